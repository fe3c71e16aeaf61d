import Foundation
import GRDB

extension SQLiteStore: CallbackOutbox {
    @discardableResult
    public func enqueueCallback(_ c: NewCallback) async throws -> Bool {
        let now = clock()
        return try await write("queue callback for job \(c.jobID)") { db in try Self.insertCallback(db, c, now: now) }
    }

    /// Inserts a callback unless its URL's cap for the event is reached. Counted inside the write
    /// transaction: concurrent workers cannot both take the last slot. - Returns: whether it was queued.
    static func insertCallback(_ db: Database, _ c: NewCallback, now date: Date) throws -> Bool {
        let now = date.timeIntervalSince1970
        if let cap = c.maxPerURL {
            let taken = try Int.fetchOne(db, sql: """
                SELECT count(*) FROM callbacks WHERE event_id = ? AND url = ? AND NOT (job_id = ? AND target_index = ? AND phase = ?)
                """, arguments: [c.eventID, c.url, c.jobID, c.targetIndex, c.phase.rawValue]) ?? 0
            if taken >= cap { return false }
        }
        try db.execute(sql: """
            INSERT INTO callbacks (id, job_id, event_id, rule, target_index, phase, kind, url, credential, body, next_attempt_at, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id, target_index, phase) DO NOTHING
            """, arguments: [c.id, c.jobID, c.eventID, c.rule, c.targetIndex, c.phase.rawValue, c.kind, c.url, c.credential.stored, c.body,
                              now, now])
        return true
    }

    public func dueCallbacks(now: Date, limit: Int) async throws -> [CallbackRecord] {
        // A read first: the deliverer polls, and takes the write lock (which ingest needs) only when something is due.
        let any = try await read("look for due callbacks") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ?)",
                              arguments: [now.timeIntervalSince1970]) ?? false
        }
        guard any else { return [] }
        return try await write("claim due callbacks") { db in
            let due = try Row.fetchAll(db, sql: "SELECT * FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY seq LIMIT ?",
                                       arguments: [now.timeIntervalSince1970, limit]).map(Self.callback)
            let hold = now.timeIntervalSince1970 + CallbackRecord.claimSeconds
            for c in due { try db.execute(sql: "UPDATE callbacks SET next_attempt_at = ? WHERE id = ?", arguments: [hold, c.id]) }
            return due
        }
    }

    public func recordDelivery(id: String, state: CallbackState, status: Int?, error: String?, retryAt: Date?) async throws {
        let now = clock().timeIntervalSince1970
        try await write("record delivery of callback \(id)") { db in
            try db.execute(sql: """
                UPDATE callbacks SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?,
                       next_attempt_at = coalesce(?, ?) WHERE id = ?
                """, arguments: [state.rawValue, status, error, retryAt?.timeIntervalSince1970, now, id])
        }
    }

    static func callback(_ row: Row) -> CallbackRecord {
        CallbackRecord(id: row["id"], jobID: row["job_id"], eventID: row["event_id"], rule: row["rule"], targetIndex: row["target_index"],
                       phase: CallbackPhase(rawValue: row["phase"]) ?? .final,
                       kind: row["kind"], url: row["url"], credential: CallbackCredential(stored: row["credential"]), body: row["body"],
                       state: CallbackState(rawValue: row["state"]) ?? .pending,
                       attempts: row["attempts"], lastStatus: row["last_status"], lastError: row["last_error"])
    }
}
