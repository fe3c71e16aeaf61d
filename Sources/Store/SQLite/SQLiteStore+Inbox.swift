import Foundation
import GRDB
import MLHookCore

extension SQLiteStore: Inbox {
    public func append(_ event: InboundEvent, plan: PlanVerdict?, jobs: [NewJob]) async throws -> AppendOutcome {
        let body = Data(event.body)
        return try await writer.submit(PreparedEvent(event: event, headers: StoredHeaders.encode(event.headers), body: body,
                                                     checksum: CRC32.checksum(body), plan: plan, jobs: jobs, now: clock()))
    }

    /// One group commit: duplicates are found first, the new events' bodies are appended to the body log
    /// (and fsynced) with one write, then the events are inserted with where their bodies are, and commit.
    /// The caller holds the write lock from BEGIN, so nothing found new here can have been stored meanwhile.
    static func insert(_ db: Database, _ events: [PreparedEvent], bodies: BodyLog) throws -> [AppendOutcome] {
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
        let refs = try bodies.append(fresh.map(\.body), checksums: fresh.map(\.checksum))
        for (p, ref) in zip(fresh, refs) {
            let e = p.event
            try insert.execute(arguments: [e.id, e.source, e.kind, e.deliveryID, p.headers,
                                           e.contentType, p.body.count, e.receivedAt.timeIntervalSince1970,
                                           (p.plan?.state ?? .received).rawValue, p.plan?.plan, p.plan?.explanation,
                                           ref.segment, ref.offset])
            if !p.jobs.isEmpty { _ = try insertJobs(db, p.jobs, now: p.now) }
        }
        return outcomes
    }

    public func event(id: String) async throws -> StoredEvent? {
        try await read("read event \(id)") { [self] db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.fullColumns) WHERE events.id = ?", arguments: [id]) else { return nil }
            return try stored(row)
        }
    }

    static let fullColumns = """
        events.id, source, kind, delivery_id, state, received_at, body_bytes AS n, headers, content_type, event_bodies.body, explanation, plan,
        body_segment, body_offset
        FROM events LEFT JOIN event_bodies ON event_bodies.seq = events.seq
        """

    /// An event row with its body: from the body log, or, for events stored before it, from event_bodies.
    func stored(_ row: Row) throws -> StoredEvent {
        let body: Data
        if let segment: Int = row["body_segment"], let offset: Int = row["body_offset"] {
            do {
                body = try bodies.read(BodyLog.Ref(segment: segment, offset: offset), length: row["n"])
            } catch {
                throw StoreError("read the body of event \(row["id"] as String? ?? "?")", error, classify: Self.classify)
            }
        } else {
            body = row["body"] ?? Data()
        }
        return StoredEvent(summary: Self.summary(row), headers: StoredHeaders.decode(row["headers"]), contentType: row["content_type"],
                           body: [UInt8](body), explanation: row["explanation"], plan: row["plan"])
    }

    static func summary(_ row: Row) -> EventSummary {
        EventSummary(id: row["id"], source: row["source"], kind: row["kind"], deliveryID: row["delivery_id"],
                     state: EventState(rawValue: row["state"]) ?? .received,
                     receivedAt: Date(timeIntervalSince1970: row["received_at"]), bodyBytes: row["n"])
    }

    public func unplanned(limit: Int) async throws -> [StoredEvent] {
        let (readable, unreadable) = try await read("read unplanned events") { [self] db in
            var readable: [StoredEvent] = []
            var unreadable: [(id: String, reason: String)] = []
            for row in try Row.fetchAll(db, sql: "SELECT \(Self.fullColumns) WHERE state = 'received' ORDER BY events.seq LIMIT ?",
                                        arguments: [limit]) {
                do { readable.append(try stored(row)) } catch let error as StoreError where !error.isRetryable {
                    // This record will not read better next time: set it aside, the others go on.
                    unreadable.append((row["id"], error.description))
                }
            }
            return (readable, unreadable)
        }
        if !unreadable.isEmpty {
            try await write("park unreadable events") { db in
                for (id, reason) in unreadable {
                    try db.execute(sql: "UPDATE events SET state = 'failed', explanation = ? WHERE id = ? AND state = 'received'",
                                   arguments: [Parked.reason("the stored event cannot be read (\(reason))"), id])
                }
            }
            for (id, reason) in unreadable { logger.error("event \(id) parked: it cannot be read: \(reason)") }
        }
        return readable
    }

    @discardableResult
    public func recordPlans(_ verdicts: [PlanVerdict], jobs: [NewJob]) async throws -> Int {
        let now = clock()
        return try await write("record plans") { db in
            let update = try db.cachedStatement(sql: "UPDATE events SET state = ?, plan = ?, explanation = ? WHERE id = ?")
            for v in verdicts { try update.execute(arguments: [v.state.rawValue, v.plan, v.explanation, v.id]) }
            return try Self.insertJobs(db, jobs, now: now)
        }
    }

    /// Creates jobs, skipping those whose idempotency key exists; a job with a supersede scope ends the older
    /// ones of its rule and scope (queued ones fail, running or watching ones get their run canceled).
    /// - Returns: How many were created.
    static func insertJobs(_ db: Database, _ jobs: [NewJob], now date: Date) throws -> Int {
        let insert = try db.cachedStatement(sql: """
            INSERT INTO jobs (id, idempotency_key, event_id, rule, action_index, action, parameters, max_attempts, created_at, next_attempt_at,
                              supersede_scope, delivery_id, context)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT delivery_id FROM events WHERE id = ?), ?) ON CONFLICT(idempotency_key) DO NOTHING
            """)
        let now = date.timeIntervalSince1970
        var created = 0
        for j in jobs {
            try insert.execute(arguments: [j.id, j.idempotencyKey, j.eventID, j.rule, j.actionIndex, j.action, j.parameters, j.maxAttempts,
                                           now, now, j.supersedeScope, j.eventID, j.context])
            guard db.changesCount == 1 else { continue }
            created += 1
            if let scope = j.supersedeScope {
                try db.execute(sql: """
                    UPDATE jobs SET state = 'failed', last_error = ? WHERE rule = ? AND supersede_scope = ? AND id != ? AND state = 'queued'
                    """, arguments: [j.supersedeReason, j.rule, scope, j.id])
                try db.execute(sql: """
                    UPDATE jobs SET cancel_requested = 1, last_error = ? WHERE rule = ? AND supersede_scope = ? AND id != ?
                           AND state IN ('running', 'watching')
                    """, arguments: [j.supersedeReason, j.rule, scope, j.id])
            }
        }
        return created
    }

    public func prune(receivedBefore date: Date) async throws -> Int {
        let (deleted, oldestSegment) = try await write("prune events") { db in
            let cutoff = date.timeIntervalSince1970
            try db.execute(sql: "DELETE FROM event_bodies WHERE seq IN (SELECT seq FROM events WHERE received_at < ?)", arguments: [cutoff])
            try db.execute(sql: "DELETE FROM events WHERE received_at < ?", arguments: [cutoff])
            let deleted = db.changesCount
            try db.execute(sql: "DELETE FROM callbacks WHERE created_at < ? AND state IN ('delivered', 'dead')", arguments: [cutoff])
            let finished = "created_at < ? AND state IN ('succeeded', 'failed', 'dead') AND id NOT IN (SELECT job_id FROM callbacks)"
            try db.execute(sql: "DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE \(finished))", arguments: [cutoff])
            try db.execute(sql: "DELETE FROM jobs WHERE \(finished)", arguments: [cutoff])
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
