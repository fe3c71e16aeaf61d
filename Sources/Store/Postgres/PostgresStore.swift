import Foundation
import Logging
import MLHookCore
import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization

/// The shared store: one PostgreSQL database that every replica of `mlhook serve` uses at once. It plays every
/// role (`Inbox`, `JobQueue`, `CallbackOutbox`, `OperatorView`, `StoreStatistics`, `StoreTransfer`).
///
/// Correctness comes from the database, not from a coordinator: a unique key on (source, delivery id) dedups
/// deliveries across replicas, jobs are claimed with `FOR NO KEY UPDATE SKIP LOCKED` under a lease with a fencing
/// token, callbacks are claimed the same way, and every write that must happen together shares one transaction.
/// Concurrent deliveries on one replica share one transaction and one WAL flush (`IngestBatcher`);
/// `synchronous_commit` stays on, so a 2xx means committed.
///
/// Every operation has a deadline (PostgresNIO's pool waits up to 60 s for an unreachable server): ingest gets
/// `store.postgres.ingest_timeout_ms` (1 s), then answers 503 (a commit whose outcome is unknown is retried by the
/// sender and deduplicated); other work gets 10 s; `/readyz` turns red when `SELECT 1` does not answer within 2 s.
///
/// Open it through `StoreFactory.open`.
public final class PostgresStore: Sendable {
    let client: PostgresClient
    private let running: Task<Void, Never>
    private let listener: Task<Void, Never>
    let logger: Logger
    let clock: @Sendable () -> Date
    /// Who holds a claim, for operators (`lease_owner`): host and process.
    let owner: String
    let batcher: IngestBatcher
    /// Fired when another replica (or this one) commits runnable jobs (LISTEN mlhook_jobs).
    let jobsReady = WakeSignal()
    /// Deadlines: ingest answers 503 past `ingestDeadline`; other operations fail as unavailable past `deadline`.
    let ingestDeadline: Duration
    let deadline: Duration

    /// The channel a committed batch with runnable jobs notifies.
    static let jobsChannel = "mlhook_jobs"

    /// Connects, migrates the schema (once, whichever replica gets there first), and starts listening for jobs.
    /// - Throws: `StoreError`: `.unavailable` when the database cannot be reached within the connect timeout,
    ///   `.schema` when a newer mlhook migrated it.
    public static func open(url: PostgresURL, poolSize: Int = 10, connectTimeout: Duration = .seconds(5), ingestDeadline: Duration = .seconds(1),
                            clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger) async throws -> PostgresStore {
        let store = PostgresStore(url: url, poolSize: poolSize, connectTimeout: connectTimeout, ingestDeadline: ingestDeadline,
                                  clock: clock, logger: logger)
        do {
            try await Deadline.run(connectTimeout * 2 + .seconds(5), "migrate \(url)") {
                try await store.migrate()
            }
        } catch {
            store.close()
            let failure = Self.storeError("open \(url)", error)
            throw StoreError(failure.code, "open \(url)", failure.reason)
        }
        return store
    }

    private init(url: PostgresURL, poolSize: Int, connectTimeout: Duration, ingestDeadline: Duration,
                 clock: @escaping @Sendable () -> Date, logger: Logger) {
        let configuration = Self.configuration(url, poolSize: poolSize, connectTimeout: connectTimeout)
        client = PostgresClient(configuration: configuration, backgroundLogger: Logger(label: "mlhook.postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
        self.logger = logger
        self.clock = clock
        self.ingestDeadline = ingestDeadline
        deadline = .seconds(10)
        owner = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):" + UUID().uuidString.prefix(8)
        running = Task { [client] in await client.run() }
        let batcher = IngestBatcher(logger: logger)
        self.batcher = batcher
        listener = Task { [client, jobsReady] in
            await Self.listen(client, channel: Self.jobsChannel, signal: jobsReady, logger: logger)
        }
        batcher.commit = { [weak self] batch in
            guard let self else { throw StoreError(.unavailable, "store events", "the store is closed") }
            return try await self.commit(batch)
        }
    }

    deinit { close() }

    /// Stops the pool and the listener.
    public func close() {
        listener.cancel()
        running.cancel()
    }

    static func configuration(_ url: PostgresURL, poolSize: Int, connectTimeout: Duration) -> PostgresClient.Configuration {
        var c: PostgresClient.Configuration
        if let socket = url.unixSocketPath {
            c = .init(unixSocketPath: socket, username: url.user, password: url.password, database: url.database)
        } else {
            let tls: PostgresClient.Configuration.TLS = switch url.tls {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
            c = .init(host: url.host ?? "localhost", port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        }
        c.options.maximumConnections = poolSize + 1  // one more for the LISTEN connection
        // Two connections are kept open, so the first delivery after a quiet spell does not pay for a connect.
        c.options.minimumConnections = min(2, poolSize)
        c.options.connectTimeout = connectTimeout
        // A pinned snapshot bloats the hot tables (river#59); a stuck statement must not hold a claim for ever.
        c.options.additionalStartupParameters = [("application_name", "mlhook"), ("statement_timeout", "30000"),
                                                 ("idle_in_transaction_session_timeout", "60000"), ("synchronous_commit", "on")]
        return c
    }

    // MARK: Running statements

    /// Runs `body` on a pooled connection within `deadline`; failures become `StoreError`s naming `operation`.
    @discardableResult
    func withConnection<T: Sendable>(_ operation: String, deadline: Duration? = nil,
                                     _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await Deadline.run(deadline ?? self.deadline, operation) { [client] in
                try await client.withConnection { conn in try await body(conn) }
            }
        } catch {
            throw Self.storeError(operation, error)
        }
    }

    /// A failure as a `StoreError`: one thrown inside a transaction comes out as it was; others keep the server's
    /// message (PSQLError's own description hides it) and their classified code.
    static func storeError(_ operation: String, _ error: any Error) -> StoreError {
        let inner = (error as? PostgresTransactionError)?.closureError ?? error
        if let store = inner as? StoreError { return store }
        return StoreError(classify(error), operation, describe(error))
    }

    /// Runs `body` in one transaction within `deadline`.
    func transaction<T: Sendable>(_ operation: String, deadline: Duration? = nil,
                                  _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let logger = self.logger
        return try await withConnection(operation, deadline: deadline) { conn in
            try await conn.withTransaction(logger: logger) { conn in try await body(conn) }
        }
    }

    /// Rows of one query, each as random access by column name.
    static func rows(_ conn: PostgresConnection, _ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRandomAccessRow] {
        try await conn.query(query, logger: logger).collect().map { $0.makeRandomAccess() }
    }

    /// The store error code of a PostgreSQL failure.
    static func classify(_ error: any Error) -> StoreError.Code {
        if let t = error as? PostgresTransactionError {
            if let inner = t.closureError { return classify(inner) }
            return .unavailable  // BEGIN or COMMIT failed: the connection went away; the outcome of a COMMIT is unknown
        }
        if error is Deadline.Expired { return .unavailable }
        guard let e = error as? PSQLError else { return .other }
        guard e.code == .server, let state = e.serverInfo?[.sqlState] else { return .unavailable }
        switch state {
        case "40001", "40P01", "55P03", "57014": return .busy            // serialization, deadlock, lock, statement timeout
        case "53100": return .storageFull
        case "53200", "53300", "57P01", "57P02", "57P03", "25P03": return .unavailable  // memory, connections, shutdown, idle tx
        case "58030": return .io
        case "XX001", "XX002": return .corrupt
        case "42P01", "42703": return .schema
        default:
            if state.hasPrefix("08") { return .unavailable }
            if state.hasPrefix("22") || state.hasPrefix("23") { return .badRecord }
            return .other
        }
    }

    /// The server's message of a failure, for logs and errors (PSQLError hides it behind a generic description).
    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] { return "PostgreSQL: \(message) (\(e.serverInfo?[.sqlState] ?? "?"))" }
            return "PostgreSQL connection: \(e.code)"
        }
        if let t = error as? PostgresTransactionError {
            if let inner = t.closureError { return describe(inner) }
            if let commit = t.commitError { return "the commit's outcome is unknown: \(describe(commit))" }
            if let begin = t.beginError { return describe(begin) }
        }
        return "\(error)"
    }

    public func isReady() async -> Bool {
        do {
            return try await withConnection("check the store", deadline: .seconds(2)) { [logger] conn in
                try await Self.rows(conn, "SELECT 1 AS one", logger).first?["one"].decode(Int.self) == 1
            }
        } catch {
            return false
        }
    }

    // MARK: Wake-ups

    /// Holds a connection of the pool (one slot, added to `pool_size` for it) listening on `channel`, firing
    /// `signal` at each notification and once after every (re)connect (a notification sent while it was away is
    /// not lost: the workers look once anyway).
    static func listen(_ client: PostgresClient, channel: String, signal: WakeSignal, logger: Logger) async {
        var delay = 0.5
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    delay = 0.5
                    try await connection.listen(on: channel) { notifications in
                        signal.fire()
                        for try await _ in notifications { signal.fire() }
                    }
                }
            } catch {}
            if Task.isCancelled { return }
            try? await Task.sleep(for: .seconds(delay * Double.random(in: 0.5...1.5)))
            delay = min(delay * 2, 5)
        }
    }
}
