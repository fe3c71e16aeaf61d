import Foundation
import GRDB
import Logging
import MLHookCore

/// The embedded store: one SQLite file in WAL mode, with event bodies in an append-only body log beside it.
/// It plays every role (`Inbox`, `JobQueue`, `CallbackOutbox`, `OperatorView`, `StoreStatistics`).
///
/// Concurrent `append` calls queue up while a transaction is in flight; the next transaction takes all of
/// them, so N concurrent deliveries share one commit and one fsync (`GroupCommitWriter`). Each caller resumes
/// only after the transaction holding its event has committed, so an acknowledged delivery is always stored.
///
/// Durability follows `store.synchronous`:
/// - `full` (default): SQLite fsyncs the WAL at every commit. A 2xx survives kill -9, an OS crash and
///   power loss.
/// - `normal`: the WAL is fsynced only at checkpoints. A 2xx survives kill -9 (the committed WAL frames are
///   in the OS page cache), but the last commits may be lost on power loss or an OS crash.
///
/// Open it through `StoreFactory.open(_:logger:)`, as `serve` and the CLI do.
public final class SQLiteStore: Sendable {
    let pool: DatabasePool
    let bodies: BodyLog
    let writer: GroupCommitWriter<PreparedEvent, AppendOutcome>
    /// Nil in a CLI process: the serving process checkpoints; another one doing it too only contends with it.
    private let checkpointer: WALCheckpointer?
    /// Whether this store checkpoints its write-ahead log (the serving process does, the CLI does not).
    var checkpoints: Bool { checkpointer != nil }
    let logger: Logger
    /// This instance, as the holder of claims and watches (`lease_owner`).
    let owner = "sqlite:\(ProcessInfo.processInfo.processIdentifier):" + UUID().uuidString.prefix(8)
    /// Stamps rows (job creation, callback due times, operator retries); injected so tests control time.
    let clock: @Sendable () -> Date

    /// An event with its columns encoded, so the writer thread does only SQLite work.
    struct PreparedEvent: Sendable {
        let event: InboundEvent
        let headers: String
        let body: Data
        /// The body's CRC-32 for the body log, computed on the request's thread: the writer, which every event
        /// waits for, only writes.
        let checksum: UInt32
        let plan: PlanVerdict?
        let jobs: [NewJob]
        /// When the jobs are created (runnable from then on).
        let now: Date
    }

    /// Opens (creating if needed) the store and migrates its schema.
    /// - Parameters:
    ///   - path: The SQLite file; its directory is created if missing.
    ///   - synchronous: Commit durability.
    ///   - maxBatch: Most events per group commit.
    ///   - bodySegmentBytes: Size at which the body log starts a new segment file.
    ///   - clock: The time rows are stamped with.
    ///   - logger: For store-level messages.
    /// - Throws: `StoreError` naming the file when it cannot be opened or migrated (`.schema` when a newer
    ///   mlhook wrote it).
    public init(path: String, synchronous: SynchronousMode = .full, maxBatch: Int = 512, bodySegmentBytes: Int = 64 << 20,
                checkpoints: Bool = true, clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger) throws {
        self.logger = logger
        self.clock = clock
        let url = URL(fileURLWithPath: path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            // Payloads can be private: create the file owner-only (SQLite gives -wal and -shm the same mode).
            if !FileManager.default.fileExists(atPath: path) {
                FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
            }
            var config = GRDB.Configuration()
            // When the checkpointer holds the write lock for a moment, retry every 0.1 ms (for up to 5 s)
            // instead of SQLite's default busy backoff, whose sleeps of 1, 2, 5, 10 … ms outlast the wait
            // they cover and showed as ingest tail latency.
            config.busyMode = .callback { attempts in
                guard attempts < 50_000 else { return false }
                usleep(100)
                return true
            }
            let sync = synchronous == .full ? "FULL" : "NORMAL"
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = \(sync)")
                // Checkpoints run on WALCheckpointer's thread, not inside commits; after a checkpoint resets
                // the log, SQLite truncates the file back to this size.
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
                try db.execute(sql: "PRAGMA journal_size_limit = \(64 << 20)")
            }
            let pool = try DatabasePool(path: path, configuration: config)
            // GRDB's DatabasePool sets `synchronous = NORMAL` on its writer when it turns WAL on, after
            // prepareDatabase ran: set the configured level again on the writer (the only connection that
            // commits), and check that it holds.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = \(sync)")
                let level = try Int.fetchOne(db, sql: "PRAGMA synchronous")
                guard level == (synchronous == .full ? 2 : 1) else {
                    throw StoreError("set synchronous", "PRAGMA synchronous is \(level.map(String.init) ?? "unknown"), not \(sync)")
                }
            }
            if try pool.read(Self.migrator.hasBeenSuperseded) {
                throw StoreError(.schema, "migrate", "the store was written by a newer mlhook (its schema has versions this one does not know)")
            }
            try Self.migrator.migrate(pool)
            if checkpoints {
                // The serving process is the only one on this file: runs an earlier process followed are this one's now
                // (a restart after kill -9 resumes watching at once, not after the earlier hold runs out).
                try pool.write { db in
                    try db.execute(sql: "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE state = 'watching' AND lease_owner IS NOT NULL")
                }
            }
            let pageSize = try pool.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } ?? 4096
            checkpointer = checkpoints ? try WALCheckpointer(path: path, pageSize: pageSize, logger: logger) : nil
            bodies = try BodyLog(directory: path + ".bodies", fsync: synchronous == .full, segmentBytes: bodySegmentBytes)
            self.pool = pool
        } catch {
            throw StoreError("open \(path)", error, classify: Self.classify)
        }
        writer = GroupCommitWriter(pool: pool, maxBatch: maxBatch, name: "mlhook-store-writer", logger: logger,
                                   commit: { [bodies] db, events in try Self.insert(db, events, bodies: bodies) })
    }

    deinit {
        writer.stop()
        checkpointer?.stop()
    }

    /// Reads on one of the pool's reader connections; failures become `StoreError`s naming `operation`.
    func read<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do { return try await pool.read(body) } catch { throw StoreError(operation, error, classify: Self.classify) }
    }

    /// Writes in one transaction; failures become `StoreError`s naming `operation`.
    func write<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do { return try await pool.write(body) } catch { throw StoreError(operation, error, classify: Self.classify) }
    }

    /// The store error code of a SQLite or body-log failure.
    static func classify(_ error: any Error) -> StoreError.Code {
        if let failure = error as? BodyLog.Failure { return failure.code }
        guard let db = error as? DatabaseError else { return .other }
        switch db.resultCode.primaryResultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: return .busy
        case .SQLITE_FULL: return .storageFull
        case .SQLITE_IOERR: return .io
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: return .corrupt
        case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY: return .unavailable
        case .SQLITE_CONSTRAINT, .SQLITE_MISMATCH, .SQLITE_TOOBIG: return .badRecord
        default: return .other
        }
    }

    public func isReady() async -> Bool {
        (try? await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }
}
