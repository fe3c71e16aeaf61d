import Foundation
import Logging
import MLHookCore
import NIOCore
import PostgresNIO

extension PostgresStore: Inbox {
    public func append(_ event: InboundEvent, plan: PlanVerdict?, jobs: [NewJob]) async throws -> AppendOutcome {
        let pending = PendingEvent(event: event, headers: StoredHeaders.encode(event.headers), plan: plan, jobs: jobs, now: clock())
        let limit = ingestDeadline
        do {
            return try await Deadline.run(limit, "store event \(event.id)") { [batcher] in
                try await batcher.submit(pending, deadline: .now + limit)
            }
        } catch {
            throw Self.storeError("store event \(event.id)", error)
        }
    }

    /// One group commit: the batch's new events go in with one statement (`unnest` over column arrays), each
    /// inserted unless its (source, delivery id) is stored already, by this replica or another: the unique key
    /// decides, waiting for a concurrent insert of the same key to commit or roll back. Then the jobs of the events
    /// that were new, and one NOTIFY when any job was created. A delivery twice in one batch: the second is a
    /// duplicate of the first.
    func commit(_ batch: [PendingEvent]) async throws -> [AppendOutcome] {
        let logger = self.logger
        var firstOf: [[String]: Int] = [:]  // (source, delivery id) → index of its first event in the batch
        var fresh: [PendingEvent] = []
        for (i, p) in batch.enumerated() where firstOf[[p.event.source, p.event.deliveryID]] == nil {
            firstOf[[p.event.source, p.event.deliveryID]] = i
            fresh.append(p)
        }
        let columns = EventColumns(fresh)
        return try await transaction("store \(batch.count) events") { [fresh, firstOf] conn in
            let inserted = Set(try await Self.rows(conn, """
                INSERT INTO events (id, source, kind, delivery_id, headers, content_type, body, body_bytes, received_at, state, plan, explanation)
                SELECT id, source, kind, delivery_id, headers, content_type, body, body_bytes, received_at, state,
                       CASE WHEN has_plan THEN plan END, CASE WHEN has_explanation THEN explanation END
                FROM unnest(\(columns.ids)::text[], \(columns.sources)::text[], \(columns.kinds)::text[], \(columns.deliveries)::text[],
                            \(columns.headers)::text[], \(columns.contentTypes)::text[], \(columns.bodies)::bytea[], \(columns.sizes)::int8[],
                            \(columns.receivedAt)::float8[], \(columns.states)::text[], \(columns.plans)::text[], \(columns.hasPlan)::bool[],
                            \(columns.explanations)::text[], \(columns.hasExplanation)::bool[])
                     AS t(id, source, kind, delivery_id, headers, content_type, body, body_bytes, received_at, state, plan, has_plan,
                          explanation, has_explanation)
                ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id
                """, logger).map { try $0["id"].decode(String.self) })
            // The ones stored before (or by a concurrent transaction that committed first): their ids.
            var existing: [[String]: String] = [:]
            let conflicted = fresh.filter { !inserted.contains($0.event.id) }
            if !conflicted.isEmpty {
                for row in try await Self.rows(conn, """
                    SELECT e.id, e.source, e.delivery_id FROM events e
                    JOIN unnest(\(conflicted.map(\.event.source))::text[], \(conflicted.map(\.event.deliveryID))::text[]) AS k(source, delivery_id)
                      ON e.source = k.source AND e.delivery_id = k.delivery_id
                    """, logger) {
                    existing[[try row["source"].decode(String.self), try row["delivery_id"].decode(String.self)]] = try row["id"].decode(String.self)
                }
            }
            var created = 0
            for p in fresh where inserted.contains(p.event.id) && !p.jobs.isEmpty {
                created += try await Self.insertJobs(conn, p.jobs, now: p.now, logger: logger)
            }
            if created > 0 { try await Self.notifyJobs(conn, logger) }
            return batch.enumerated().map { i, p in
                let key = [p.event.source, p.event.deliveryID]
                let first = batch[firstOf[key] ?? i].event.id
                if firstOf[key] == i && inserted.contains(p.event.id) { return .stored(id: p.event.id) }
                return .duplicate(id: existing[key] ?? first)
            }
        }
    }

    /// A batch's events as column arrays, for one `unnest` insert (arrays cannot hold NULL here: a flag says which
    /// optional values are absent).
    struct EventColumns: Sendable {
        var ids: [String] = [], sources: [String] = [], kinds: [String] = [], deliveries: [String] = [], headers: [String] = []
        var contentTypes: [String] = [], bodies: [ByteBuffer] = [], sizes: [Int] = [], receivedAt: [Double] = [], states: [String] = []
        var plans: [String] = [], hasPlan: [Bool] = [], explanations: [String] = [], hasExplanation: [Bool] = []

        init(_ events: [PendingEvent]) {
            for p in events {
                let e = p.event
                ids.append(e.id); sources.append(e.source); kinds.append(e.kind); deliveries.append(e.deliveryID)
                headers.append(p.headers); contentTypes.append(e.contentType); bodies.append(ByteBuffer(bytes: e.body))
                sizes.append(e.body.count); receivedAt.append(e.receivedAt.timeIntervalSince1970)
                states.append((p.plan?.state ?? .received).rawValue)
                plans.append(p.plan?.plan ?? ""); hasPlan.append(p.plan?.plan != nil)
                explanations.append(p.plan?.explanation ?? ""); hasExplanation.append(p.plan?.explanation != nil)
            }
        }
    }

    /// Tells every replica's listener that jobs are runnable (delivered at commit; several in one transaction fold).
    static func notifyJobs(_ conn: PostgresConnection, _ logger: Logger) async throws {
        try await conn.query("SELECT pg_notify(\(jobsChannel), '')", logger: logger)
    }

    /// Creates jobs, skipping those whose idempotency key exists; a job with a supersede scope ends the older
    /// ones of its rule and scope (queued ones fail, running or watching ones get their run canceled).
    static func insertJobs(_ conn: PostgresConnection, _ jobs: [NewJob], now date: Date, logger: Logger) async throws -> Int {
        let now = date.timeIntervalSince1970
        var created = 0
        for j in jobs {
            let rows = try await rows(conn, """
                INSERT INTO jobs (id, idempotency_key, event_id, rule, action_index, action, parameters, max_attempts, created_at, next_attempt_at,
                                  supersede_scope, delivery_id, context)
                VALUES (\(j.id), \(j.idempotencyKey), \(j.eventID), \(j.rule), \(j.actionIndex), \(j.action), \(j.parameters), \(j.maxAttempts),
                        \(now), \(now), \(j.supersedeScope), (SELECT delivery_id FROM events WHERE id = \(j.eventID)), \(j.context))
                ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1 AS one
                """, logger)
            guard !rows.isEmpty else { continue }
            created += 1
            if let scope = j.supersedeScope {
                try await conn.query("""
                    UPDATE jobs SET state = 'failed', last_error = \(j.supersedeReason)
                    WHERE rule = \(j.rule) AND supersede_scope = \(scope) AND id <> \(j.id) AND state = 'queued'
                    """, logger: logger)
                try await conn.query("""
                    UPDATE jobs SET cancel_requested = true, last_error = \(j.supersedeReason)
                    WHERE rule = \(j.rule) AND supersede_scope = \(scope) AND id <> \(j.id) AND state IN ('running', 'watching')
                    """, logger: logger)
            }
        }
        return created
    }

    static let fullColumns = """
        id, source, kind, delivery_id, state, received_at, body_bytes, headers, content_type, body, explanation, plan FROM events
        """

    static func stored(_ row: PostgresRandomAccessRow) throws -> StoredEvent {
        var body = try row["body"].decode(ByteBuffer.self)
        return StoredEvent(summary: try summary(row), headers: StoredHeaders.decode(try row["headers"].decode(String.self)),
                           contentType: try row["content_type"].decode(String.self), body: body.readBytes(length: body.readableBytes) ?? [],
                           explanation: try row["explanation"].decode(String?.self), plan: try row["plan"].decode(String?.self))
    }

    static func summary(_ row: PostgresRandomAccessRow) throws -> EventSummary {
        EventSummary(id: try row["id"].decode(String.self), source: try row["source"].decode(String.self), kind: try row["kind"].decode(String.self),
                     deliveryID: try row["delivery_id"].decode(String.self),
                     state: EventState(rawValue: try row["state"].decode(String.self)) ?? .received,
                     receivedAt: Date(timeIntervalSince1970: try row["received_at"].decode(Double.self)),
                     bodyBytes: try row["body_bytes"].decode(Int.self))
    }

    public func event(id: String) async throws -> StoredEvent? {
        try await withConnection("read event \(id)") { [logger] conn in
            try await Self.rows(conn, "SELECT \(unescaped: Self.fullColumns) WHERE id = \(id)", logger).first.map(Self.stored)
        }
    }

    public func unplanned(limit: Int) async throws -> [StoredEvent] {
        // Bodies live in the row: nothing here is unreadable the way a damaged body log segment is.
        try await withConnection("read unplanned events") { [logger] conn in
            try await Self.rows(conn, "SELECT \(unescaped: Self.fullColumns) WHERE state = 'received' ORDER BY seq LIMIT \(limit)", logger)
                .map(Self.stored)
        }
    }

    @discardableResult
    public func recordPlans(_ verdicts: [PlanVerdict], jobs: [NewJob]) async throws -> Int {
        let now = clock()
        let logger = self.logger
        return try await transaction("record plans") { conn in
            for v in verdicts {
                try await conn.query("UPDATE events SET state = \(v.state.rawValue), plan = \(v.plan), explanation = \(v.explanation) WHERE id = \(v.id)",
                                     logger: logger)
            }
            let created = try await Self.insertJobs(conn, jobs, now: now, logger: logger)
            if created > 0 { try await Self.notifyJobs(conn, logger) }
            return created
        }
    }

    /// Deletes in batches of `pruneBatch` rows, each its own short transaction, so pruning a large backlog never
    /// holds locks or a snapshot for long; two replicas pruning at once only share the work.
    public func prune(receivedBefore date: Date) async throws -> Int {
        let cutoff = date.timeIntervalSince1970
        let batch = Self.pruneBatch
        var deleted = 0
        while true {
            let n = try await withConnection("prune events") { [logger] conn in
                try await Self.rows(conn, """
                    DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE received_at < \(cutoff) LIMIT \(batch) FOR UPDATE SKIP LOCKED)
                    RETURNING 1 AS one
                    """, logger).count
            }
            deleted += n
            if n < batch { break }
        }
        while try await withConnection("prune callbacks", { [logger] conn in
            try await Self.rows(conn, """
                DELETE FROM callbacks WHERE seq IN (SELECT seq FROM callbacks WHERE created_at < \(cutoff) AND state IN ('delivered', 'dead')
                                                    LIMIT \(batch) FOR UPDATE SKIP LOCKED)
                RETURNING 1 AS one
                """, logger).count
        }) == batch {}
        while try await withConnection("prune jobs", { [logger] conn in
            try await Self.rows(conn, """
                WITH gone AS (
                    DELETE FROM jobs WHERE seq IN (
                        SELECT seq FROM jobs j WHERE created_at < \(cutoff) AND state IN ('succeeded', 'failed', 'dead')
                           AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.job_id = j.id)
                        LIMIT \(batch) FOR UPDATE SKIP LOCKED)
                    RETURNING id),
                attempts AS (DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM gone))
                SELECT count(*) AS n FROM gone
                """, logger).first?["n"].decode(Int.self) ?? 0
        }) == batch {}
        return deleted
    }

    /// Rows deleted per pruning statement.
    static let pruneBatch = 1000
}
