import Foundation
import Logging
import MLHookCore
import PostgresNIO

extension PostgresStore: CallbackOutbox {
    @discardableResult
    public func enqueueCallback(_ c: NewCallback) async throws -> Bool {
        let now = clock()
        let logger = self.logger
        return try await transaction("queue callback for job \(c.jobID)") { conn in try await Self.insertCallback(conn, c, now: now, logger: logger) }
    }

    /// Inserts a callback unless its URL's cap for the event is reached. Concurrent transactions (any replica)
    /// counting the same event and URL are serialized by an advisory lock on the pair, so they cannot both take
    /// the last slot. - Returns: whether it was queued.
    static func insertCallback(_ conn: PostgresConnection, _ c: NewCallback, now date: Date, logger: Logger) async throws -> Bool {
        let now = date.timeIntervalSince1970
        if let cap = c.maxPerURL {
            try await conn.query("SELECT pg_advisory_xact_lock(hashtextextended(\(c.eventID + "\n" + c.url), 0))", logger: logger)
            let taken = try await rows(conn, """
                SELECT count(*) AS n FROM callbacks WHERE event_id = \(c.eventID) AND url = \(c.url)
                  AND NOT (job_id = \(c.jobID) AND target_index = \(c.targetIndex) AND phase = \(c.phase.rawValue))
                """, logger).first?["n"].decode(Int.self) ?? 0
            if taken >= cap { return false }
        }
        try await conn.query("""
            INSERT INTO callbacks (id, job_id, event_id, rule, target_index, phase, kind, url, credential, body, next_attempt_at, created_at)
            VALUES (\(c.id), \(c.jobID), \(c.eventID), \(c.rule), \(c.targetIndex), \(c.phase.rawValue), \(c.kind), \(c.url),
                    \(c.credential.stored), \(c.body), \(now), \(now))
            ON CONFLICT (job_id, target_index, phase) DO NOTHING
            """, logger: logger)
        return true
    }

    public func dueCallbacks(now: Date, limit: Int) async throws -> [CallbackRecord] {
        // A claim: the rows are locked with SKIP LOCKED and pushed out by the claim time, so a deliverer on another
        // replica does not post them too; recording the delivery sets their real state and due time.
        let at = now.timeIntervalSince1970
        let until = at + CallbackRecord.claimSeconds
        return try await withConnection("claim due callbacks") { [logger] conn in
            try await Self.rows(conn, """
                WITH c AS MATERIALIZED (
                    SELECT seq FROM callbacks WHERE state = 'pending' AND next_attempt_at <= \(at)
                    ORDER BY seq LIMIT \(limit) FOR NO KEY UPDATE SKIP LOCKED)
                UPDATE callbacks SET next_attempt_at = \(until) FROM c WHERE callbacks.seq = c.seq RETURNING callbacks.*
                """, logger).map(Self.callback).sorted { $0.seq < $1.seq }.map(\.record)
        }
    }

    public func recordDelivery(id: String, state: CallbackState, status: Int?, error: String?, retryAt: Date?) async throws {
        let now = clock().timeIntervalSince1970
        try await withConnection("record delivery of callback \(id)") { [logger] conn in
            // A pending callback without a retry time is due again at once (the claim's hold is lifted).
            try await conn.query("""
                UPDATE callbacks SET state = \(state.rawValue), attempts = attempts + 1, last_status = \(status), last_error = \(error),
                       next_attempt_at = coalesce(\(retryAt?.timeIntervalSince1970), \(now))
                WHERE id = \(id)
                """, logger: logger)
        }
    }

    static func callback(_ row: PostgresRandomAccessRow) throws -> (seq: Int, record: CallbackRecord) {
        (try row["seq"].decode(Int.self),
         CallbackRecord(id: try row["id"].decode(String.self), jobID: try row["job_id"].decode(String.self),
                        eventID: try row["event_id"].decode(String.self), rule: try row["rule"].decode(String.self),
                        targetIndex: try row["target_index"].decode(Int.self),
                        phase: CallbackPhase(rawValue: try row["phase"].decode(String.self)) ?? .final,
                        kind: try row["kind"].decode(String.self), url: try row["url"].decode(String.self),
                        credential: CallbackCredential(stored: try row["credential"].decode(String?.self)), body: try row["body"].decode(String.self),
                        state: CallbackState(rawValue: try row["state"].decode(String.self)) ?? .pending,
                        attempts: try row["attempts"].decode(Int.self), lastStatus: try row["last_status"].decode(Int?.self),
                        lastError: try row["last_error"].decode(String?.self)))
    }
}
