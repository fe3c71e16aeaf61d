import Foundation
import GRDB
import Logging
import MLHookCore

/// The embedded inbox: one SQLite file in WAL mode, written through a group commit.
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
public final class SQLiteEventStore: EventStore {
    let pool: DatabasePool
    let bodies: BodyLog
    private let writer: GroupCommitWriter<PreparedEvent, AppendOutcome>
    private let checkpointer: WALCheckpointer
    private let logger: Logger

    /// An event with its columns encoded, so the writer thread does only SQLite work.
    struct PreparedEvent: Sendable {
        let event: InboundEvent
        let headers: String
        let body: Data
        let plan: PlanVerdict?
        let jobs: [NewJob]
    }

    /// Opens (creating if needed) the store and migrates its schema.
    /// - Parameters:
    ///   - path: The SQLite file; its directory is created if missing.
    ///   - synchronous: Commit durability.
    ///   - maxBatch: Most events per group commit.
    ///   - bodySegmentBytes: Size at which the body log starts a new segment file.
    ///   - logger: For store-level messages.
    /// - Throws: `StoreError` naming the file when it cannot be opened or migrated.
    public init(path: String, synchronous: SynchronousMode = .full, maxBatch: Int = 512, bodySegmentBytes: Int = 64 << 20,
                logger: Logger) throws {
        self.logger = logger
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
            try Self.migrator.migrate(pool)
            let pageSize = try pool.read { try Int.fetchOne($0, sql: "PRAGMA page_size") } ?? 4096
            checkpointer = try WALCheckpointer(path: path, pageSize: pageSize, logger: logger)
            bodies = try BodyLog(directory: path + ".bodies", fsync: synchronous == .full, segmentBytes: bodySegmentBytes)
            self.pool = pool
        } catch {
            throw StoreError("open \(path)", error)
        }
        writer = GroupCommitWriter(pool: pool, maxBatch: maxBatch, name: "mlhook-store-writer", logger: logger,
                                   commit: { [bodies] db, events in try Self.insert(db, events, bodies: bodies) })
    }

    deinit {
        writer.stop()
        checkpointer.stop()
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1 events") { db in
            try db.execute(sql: """
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    source TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    delivery_id TEXT NOT NULL,
                    headers TEXT NOT NULL,
                    content_type TEXT NOT NULL,
                    body BLOB NOT NULL,
                    received_at REAL NOT NULL,
                    state TEXT NOT NULL DEFAULT 'received',
                    explanation TEXT
                );
                CREATE UNIQUE INDEX events_dedup ON events(source, delivery_id);
                CREATE INDEX events_received_at ON events(received_at);
                """)
        }
        m.registerMigration("v2 plans") { db in
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN plan TEXT;
                CREATE INDEX events_unplanned ON events(seq) WHERE state = 'received';
                """)
        }
        m.registerMigration("v3 jobs") { db in
            try db.execute(sql: """
                CREATE TABLE jobs (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    idempotency_key TEXT NOT NULL UNIQUE,
                    event_id TEXT NOT NULL,
                    rule TEXT NOT NULL,
                    action_index INTEGER NOT NULL,
                    action TEXT NOT NULL,
                    parameters TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'queued',
                    attempts INTEGER NOT NULL DEFAULT 0,
                    max_attempts INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    next_attempt_at REAL NOT NULL,
                    lease_until REAL,
                    last_error TEXT
                );
                CREATE INDEX jobs_runnable ON jobs(next_attempt_at) WHERE state = 'queued';
                CREATE INDEX jobs_event ON jobs(event_id);
                """)
        }
        m.registerMigration("v4 attempts") { db in
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN result TEXT;
                CREATE TABLE job_attempts (
                    job_id TEXT NOT NULL, number INTEGER NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL,
                    outcome TEXT NOT NULL, error TEXT, PRIMARY KEY (job_id, number)
                );
                """)
        }
        m.registerMigration("v5 callbacks") { db in
            try db.execute(sql: """
                CREATE TABLE callbacks (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    id TEXT NOT NULL UNIQUE,
                    job_id TEXT NOT NULL, event_id TEXT NOT NULL, rule TEXT NOT NULL, target_index INTEGER NOT NULL,
                    kind TEXT NOT NULL, url TEXT NOT NULL, body TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT, created_at REAL NOT NULL,
                    UNIQUE (job_id, target_index)
                );
                CREATE INDEX callbacks_due ON callbacks(next_attempt_at) WHERE state = 'pending';
                """)
        }
        m.registerMigration("v6 supersede") { db in
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN supersede_scope TEXT;
                ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
                """)
        }
        m.registerMigration("v7 callbacks by event") { db in
            try db.execute(sql: "CREATE INDEX callbacks_event ON callbacks(event_id)")
        }
        m.registerMigration("v8 job delivery id") { db in
            // Copied from the event at planning, so every log line about a job can name the delivery.
            try db.execute(sql: """
                ALTER TABLE jobs ADD COLUMN delivery_id TEXT;
                UPDATE jobs SET delivery_id = (SELECT delivery_id FROM events WHERE events.id = jobs.event_id);
                """)
        }
        m.registerMigration("v9 event bodies apart") { db in
            // SQLite rewrites a whole row, overflow pages included, on any UPDATE: with the body in the events
            // row, planning an event (state, plan, explanation) wrote its ~7 KB body to the WAL a second time
            // and the checkpointer copied it twice. Bodies now live in their own table, written once.
            try db.execute(sql: """
                CREATE TABLE event_bodies (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
                INSERT INTO event_bodies (seq, body) SELECT seq, body FROM events;
                ALTER TABLE events ADD COLUMN body_bytes INTEGER NOT NULL DEFAULT 0;
                UPDATE events SET body_bytes = length(body);
                ALTER TABLE events DROP COLUMN body;
                """)
        }
        m.registerMigration("v10 body log") { db in
            // New bodies go to BodyLog's segment files; events stored before keep theirs in event_bodies.
            try db.execute(sql: """
                ALTER TABLE events ADD COLUMN body_segment INTEGER;
                ALTER TABLE events ADD COLUMN body_offset INTEGER;
                """)
        }
        return m
    }

    public func append(_ event: InboundEvent, plan: PlanVerdict?, jobs: [NewJob]) async throws -> AppendOutcome {
        try await writer.submit(PreparedEvent(event: event, headers: Self.encodeHeaders(event.headers), body: Data(event.body),
                                              plan: plan, jobs: jobs))
    }

    /// One group commit: duplicates are found first, the new events' bodies are appended to the body log
    /// (and fsynced) with one write, then the events are inserted with where their bodies are, and commit.
    /// The caller holds the write lock from BEGIN, so nothing found new here can have been stored meanwhile.
    private static func insert(_ db: Database, _ events: [PreparedEvent], bodies: BodyLog) throws -> [AppendOutcome] {
        let insert = try db.cachedStatement(sql: """
            INSERT INTO events (id, source, kind, delivery_id, headers, content_type, body_bytes, received_at, state, plan, explanation,
                                body_segment, body_offset)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let existing = try db.cachedStatement(sql: "SELECT id FROM events WHERE source = ? AND delivery_id = ?")
        var outcomes: [AppendOutcome] = []
        var fresh: [PreparedEvent] = []
        var inBatch: [[String]: String] = [:]  // the same delivery twice in one batch: the second is a duplicate of the first
        for p in events {
            let key = [p.event.source, p.event.deliveryID]
            if let id = try String.fetchOne(existing, arguments: StatementArguments(key)) ?? inBatch[key] {
                outcomes.append(.duplicate(id: id))
            } else {
                inBatch[key] = p.event.id
                fresh.append(p)
                outcomes.append(.stored(id: p.event.id))
            }
        }
        let refs = try bodies.append(fresh.map(\.body))
        for (p, ref) in zip(fresh, refs) {
            let e = p.event
            try insert.execute(arguments: [e.id, e.source, e.kind, e.deliveryID, p.headers,
                                           e.contentType, p.body.count, e.receivedAt.timeIntervalSince1970,
                                           (p.plan?.state ?? .received).rawValue, p.plan?.plan, p.plan?.explanation,
                                           ref.segment, ref.offset])
            if !p.jobs.isEmpty { _ = try insertJobs(db, p.jobs) }
        }
        return outcomes
    }

    static func encodeHeaders(_ headers: [String: String]) -> String { JSONText.object(headers) }

    static func decodeHeaders(_ text: String) -> [String: String] {
        // The planner reads every event's headers: the one-pass parser, not JSONSerialization.
        guard case .object(let fields)? = JSONValue.parse(Array(text.utf8)) else { return [:] }
        return fields.compactMapValues(\.string)
    }

    public func events(_ q: EventQuery) async throws -> [EventSummary] {
        try await pool.read { db in
            var w = Filter(table: "events")
            w.add("source", q.source); w.add("kind", q.kind); w.add("state", q.state?.rawValue); w.before(q.before)
            return try Row.fetchAll(db, sql: "SELECT id, source, kind, delivery_id, state, received_at, body_bytes AS n FROM events"
                                    + w.sql(limit: q.limit), arguments: w.arguments).map(Self.summary)
        }
    }

    /// A WHERE clause built from optional equality filters and a `before` cursor, with its arguments.
    struct Filter {
        let table: String
        var clauses: [String] = []
        var arguments: StatementArguments = []
        init(table: String) { self.table = table }
        mutating func add(_ column: String, _ value: String?) {
            guard let value else { return }
            clauses.append("\(column) = ?")
            arguments += [value]
        }
        mutating func before(_ id: String?) {
            guard let id else { return }
            clauses.append("seq < coalesce((SELECT seq FROM \(table) WHERE id = ?), 0)")
            arguments += [id]
        }
        func sql(limit: Int?) -> String {
            var s = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
            s += " ORDER BY seq DESC"
            if let limit { s += " LIMIT \(max(0, limit))" }
            return s
        }
    }

    private static func summary(_ row: Row) -> EventSummary {
        EventSummary(id: row["id"], source: row["source"], kind: row["kind"], deliveryID: row["delivery_id"],
                     state: EventState(rawValue: row["state"]) ?? .received,
                     receivedAt: Date(timeIntervalSince1970: row["received_at"]), bodyBytes: row["n"])
    }

    public func event(id: String) async throws -> StoredEvent? {
        try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT \(Self.fullColumns) WHERE events.id = ?
                """, arguments: [id]) else { return nil }
            return try stored(row)
        }
    }

    private static let fullColumns = """
        events.id, source, kind, delivery_id, state, received_at, body_bytes AS n, headers, content_type, event_bodies.body, explanation, plan,
        body_segment, body_offset
        FROM events LEFT JOIN event_bodies ON event_bodies.seq = events.seq
        """

    /// An event row with its body: from the body log, or, for events stored before it, from event_bodies.
    private func stored(_ row: Row) throws -> StoredEvent {
        let body: Data
        if let segment: Int = row["body_segment"], let offset: Int = row["body_offset"] {
            do {
                body = try bodies.read(BodyLog.Ref(segment: segment, offset: offset), length: row["n"])
            } catch {
                throw StoreError("read the body of event \(row["id"] as String? ?? "?")", error)
            }
        } else {
            body = row["body"] ?? Data()
        }
        return StoredEvent(summary: Self.summary(row), headers: Self.decodeHeaders(row["headers"]), contentType: row["content_type"],
                           body: [UInt8](body), explanation: row["explanation"], plan: row["plan"])
    }

    public func unplanned(limit: Int) async throws -> [StoredEvent] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.fullColumns) WHERE state = 'received' ORDER BY events.seq LIMIT ?",
                             arguments: [limit]).map(stored)
        }
    }

    @discardableResult
    public func recordPlans(_ verdicts: [PlanVerdict], jobs: [NewJob]) async throws -> Int {
        try await pool.write { db in
            let update = try db.cachedStatement(sql: "UPDATE events SET state = ?, plan = ?, explanation = ? WHERE id = ?")
            for v in verdicts { try update.execute(arguments: [v.state.rawValue, v.plan, v.explanation, v.id]) }
            return try Self.insertJobs(db, jobs)
        }
    }

    /// Creates jobs, skipping those whose idempotency key exists; a `supersede` job ends the older ones of its
    /// rule and scope. - Returns: How many were created.
    private static func insertJobs(_ db: Database, _ jobs: [NewJob]) throws -> Int {
        let insert = try db.cachedStatement(sql: """
            INSERT INTO jobs (id, idempotency_key, event_id, rule, action_index, action, parameters, max_attempts, created_at, next_attempt_at,
                              supersede_scope, delivery_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT delivery_id FROM events WHERE id = ?)) ON CONFLICT(idempotency_key) DO NOTHING
            """)
        let now = Date().timeIntervalSince1970
        var created = 0
        for j in jobs {
            let id = "job_" + String(EventID.make().dropFirst(4))
            try insert.execute(arguments: [id, j.idempotencyKey, j.eventID, j.rule, j.actionIndex, j.action, j.parameters, j.maxAttempts,
                                           now, now, j.supersedeScope, j.eventID])
            guard db.changesCount == 1 else { continue }
            created += 1
            if let scope = j.supersedeScope {
                // A newer push to the same branch: older queued jobs of the rule end here; running or watching
                // ones get their run canceled by the watcher.
                try db.execute(sql: """
                    UPDATE jobs SET state = 'failed', last_error = ? WHERE rule = ? AND supersede_scope = ? AND id != ? AND state = 'queued'
                    """, arguments: ["superseded by job \(id)", j.rule, scope, id])
                try db.execute(sql: """
                    UPDATE jobs SET cancel_requested = 1, last_error = ? WHERE rule = ? AND supersede_scope = ? AND id != ?
                           AND state IN ('running', 'watching')
                    """, arguments: ["superseded by job \(id)", j.rule, scope, id])
            }
        }
        return created
    }

    public func jobs(_ q: JobQuery) async throws -> [JobRecord] {
        try await pool.read { db in
            var w = Filter(table: "jobs")
            w.add("state", q.state?.rawValue); w.add("rule", q.rule); w.add("event_id", q.eventID); w.before(q.before)
            return try Row.fetchAll(db, sql: "SELECT * FROM jobs" + w.sql(limit: q.limit), arguments: w.arguments).map(Self.job)
        }
    }

    public func job(id: String) async throws -> JobRecord? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]).map(Self.job) }
    }

    private static func job(_ row: Row) -> JobRecord {
        JobRecord(id: row["id"], idempotencyKey: row["idempotency_key"], eventID: row["event_id"], rule: row["rule"],
                  actionIndex: row["action_index"], action: row["action"], parameters: row["parameters"],
                  state: JobState(rawValue: row["state"]) ?? .queued, attempts: row["attempts"], maxAttempts: row["max_attempts"],
                  createdAt: Date(timeIntervalSince1970: row["created_at"]), lastError: row["last_error"], result: row["result"],
                  deliveryID: row["delivery_id"])
    }

    public func claimJob(now: Date, lease: TimeInterval, ruleLimits: [String: Int], actions: Set<String>) async throws -> JobRecord? {
        // Idle workers poll: a read first, so they take SQLite's single write lock (which ingest's group commit
        // needs) only when there is something to claim.
        let any = try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued' AND next_attempt_at <= ?)",
                              arguments: [now.timeIntervalSince1970]) ?? false
        }
        guard any else { return nil }
        return try await pool.write { db in
            var busy: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT rule, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY rule") {
                busy[row["rule"]] = row["n"]
            }
            let full = ruleLimits.filter { (busy[$0.key] ?? 0) >= $0.value }.map(\.key)
            guard !actions.isEmpty else { return nil }
            var sql = "SELECT id FROM jobs WHERE state = 'queued' AND next_attempt_at <= ? AND action IN ("
                + actions.map { _ in "?" }.joined(separator: ",") + ")"
            var args: StatementArguments = [now.timeIntervalSince1970]
            for a in actions.sorted() { args += [a] }
            if !full.isEmpty {
                sql += " AND rule NOT IN (" + full.map { _ in "?" }.joined(separator: ",") + ")"
                for r in full { args += [r] }
            }
            sql += " ORDER BY seq LIMIT 1"
            guard let id = try String.fetchOne(db, sql: sql, arguments: args) else { return nil }
            try db.execute(sql: "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ? WHERE id = ?",
                           arguments: [now.timeIntervalSince1970 + lease, id])
            return try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]).map(Self.job)
        }
    }

    @discardableResult
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                              callbacks: [NewCallback], countAttempt: Bool) async throws -> Int {
        try await pool.write { db in
            let attempts = try Int.fetchOne(db, sql: "SELECT attempts FROM jobs WHERE id = ?", arguments: [id]) ?? 0
            try db.execute(sql: """
                INSERT OR REPLACE INTO job_attempts (job_id, number, started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [id, attempts, startedAt.timeIntervalSince1970, now.timeIntervalSince1970, state.rawValue, error])
            if !countAttempt {
                // The attempt stays in the history; the job gets it back (the next one reuses its number).
                try db.execute(sql: "UPDATE jobs SET attempts = max(0, attempts - 1) WHERE id = ?", arguments: [id])
            }
            try db.execute(sql: """
                UPDATE jobs SET state = ?, last_error = ?, result = coalesce(?, result), lease_until = NULL,
                       next_attempt_at = coalesce(?, next_attempt_at) WHERE id = ?
                """, arguments: [state.rawValue, error, result, retryAt?.timeIntervalSince1970, id])
            return try callbacks.filter { try !Self.insertCallback(db, $0) }.count
        }
    }

    @discardableResult
    public func enqueueCallback(_ c: NewCallback) async throws -> Bool {
        try await pool.write { db in try Self.insertCallback(db, c) }
    }

    /// Inserts a callback unless its URL's cap for the event is reached. Counted inside the write
    /// transaction: concurrent workers cannot both take the last slot. - Returns: whether it was queued.
    private static func insertCallback(_ db: Database, _ c: NewCallback) throws -> Bool {
        let now = Date().timeIntervalSince1970
        if let cap = c.maxPerURL {
            let taken = try Int.fetchOne(db, sql: """
                SELECT count(*) FROM callbacks WHERE event_id = ? AND url = ? AND NOT (job_id = ? AND target_index = ?)
                """, arguments: [c.eventID, c.url, c.jobID, c.targetIndex]) ?? 0
            if taken >= cap { return false }
        }
        try db.execute(sql: """
            INSERT INTO callbacks (id, job_id, event_id, rule, target_index, kind, url, body, next_attempt_at, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id, target_index) DO NOTHING
            """, arguments: ["msg_" + String(EventID.make().dropFirst(4)), c.jobID, c.eventID, c.rule, c.targetIndex, c.kind, c.url,
                              c.body, now, now])
        return true
    }

    public func dueCallbacks(now: Date, limit: Int) async throws -> [CallbackRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
                             arguments: [now.timeIntervalSince1970, limit]).map(Self.callback)
        }
    }

    public func recordDelivery(id: String, state: CallbackState, status: Int?, error: String?, retryAt: Date?) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                UPDATE callbacks SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?,
                       next_attempt_at = coalesce(?, next_attempt_at) WHERE id = ?
                """, arguments: [state.rawValue, status, error, retryAt?.timeIntervalSince1970, id])
        }
    }

    public func retryJob(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: """
                UPDATE jobs SET state = 'queued', max_attempts = attempts + max_attempts, next_attempt_at = ?, last_error = NULL
                WHERE id = ? AND state IN ('failed', 'dead')
                """, arguments: [Date().timeIntervalSince1970, id])
            return db.changesCount == 1
        }
    }

    public func replayCallback(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE callbacks SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE id = ?",
                           arguments: [Date().timeIntervalSince1970, id])
            return db.changesCount == 1
        }
    }

    public func callback(id: String) async throws -> CallbackRecord? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM callbacks WHERE id = ?", arguments: [id]).map(Self.callback) }
    }

    public func callbacks(_ q: CallbackQuery) async throws -> [CallbackRecord] {
        try await pool.read { db in
            var w = Filter(table: "callbacks")
            w.add("state", q.state?.rawValue); w.add("kind", q.kind); w.add("event_id", q.eventID); w.add("job_id", q.jobID); w.before(q.before)
            return try Row.fetchAll(db, sql: "SELECT * FROM callbacks" + w.sql(limit: q.limit), arguments: w.arguments).map(Self.callback)
        }
    }

    public func explanations(ids: [String]) async throws -> [String: String] {
        guard !ids.isEmpty else { return [:] }
        return try await pool.read { db in
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
            var out: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, explanation FROM events WHERE id IN (\(marks)) AND explanation IS NOT NULL",
                                        arguments: StatementArguments(ids)) {
                out[row["id"]] = row["explanation"]
            }
            return out
        }
    }

    public func counts() async throws -> StoreCounts {
        try await pool.read { db in
            func grouped(_ table: String) throws -> [String: Int] {
                var out: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT state, count(*) AS n FROM \(table) GROUP BY state") { out[row["state"]] = row["n"] }
                return out
            }
            // Events: only the planning backlog (a partial index), not a scan of the whole inbox.
            let backlog = try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE state = 'received'") ?? 0
            return StoreCounts(jobs: try grouped("jobs"), callbacks: try grouped("callbacks"), events: ["received": backlog])
        }
    }

    private static func callback(_ row: Row) -> CallbackRecord {
        CallbackRecord(id: row["id"], jobID: row["job_id"], eventID: row["event_id"], rule: row["rule"], targetIndex: row["target_index"],
                       kind: row["kind"], url: row["url"], body: row["body"], state: CallbackState(rawValue: row["state"]) ?? .pending,
                       attempts: row["attempts"], lastStatus: row["last_status"], lastError: row["last_error"])
    }

    public func cancelRequested() async throws -> [JobRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM jobs WHERE cancel_requested = 1 AND state = 'watching'").map(Self.job)
        }
    }

    @discardableResult
    public func finishWatch(id: String, state: JobState, error: String?, result: String, callbacks: [NewCallback]) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "UPDATE jobs SET state = ?, last_error = ?, result = ? WHERE id = ? AND state = 'watching'",
                           arguments: [state.rawValue, error, result, id])
            guard db.changesCount > 0 else { return 0 }
            return try callbacks.filter { try !Self.insertCallback(db, $0) }.count
        }
    }

    @discardableResult
    public func releaseExpiredLeases(now: Date) async throws -> Int {
        let any = try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'running' AND lease_until < ?)",
                              arguments: [now.timeIntervalSince1970]) ?? false
        }
        guard any else { return 0 }
        return try await pool.write { db in
            try db.execute(sql: "UPDATE jobs SET state = 'queued', lease_until = NULL WHERE state = 'running' AND lease_until < ?",
                           arguments: [now.timeIntervalSince1970])
            return db.changesCount
        }
    }

    public func attempts(jobID: String) async throws -> [JobAttempt] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM job_attempts WHERE job_id = ? ORDER BY number", arguments: [jobID]).map { row in
                JobAttempt(number: row["number"], startedAt: Date(timeIntervalSince1970: row["started_at"]),
                           endedAt: Date(timeIntervalSince1970: row["ended_at"]), outcome: JobState(rawValue: row["outcome"]) ?? .failed,
                           error: row["error"])
            }
        }
    }

    public func isReady() async -> Bool {
        (try? await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }) == 1
    }

    public func prune(receivedBefore date: Date) async throws -> Int {
        let (deleted, oldestSegment) = try await pool.write { db in
            let cutoff = date.timeIntervalSince1970
            try db.execute(sql: "DELETE FROM event_bodies WHERE seq IN (SELECT seq FROM events WHERE received_at < ?)", arguments: [cutoff])
            try db.execute(sql: "DELETE FROM events WHERE received_at < ?", arguments: [cutoff])
            let deleted = db.changesCount
            return (deleted, try Int.fetchOne(db, sql: "SELECT min(body_segment) FROM events"))
        }
        // After the commit: segments no stored event points into (never the one being appended to).
        do {
            try bodies.prune(before: oldestSegment ?? Int.max)
        } catch {
            logger.warning("store: old body segments not removed (will retry at the next pruning): \(error)")
        }
        return deleted
    }
}
