import Foundation
import GRDB

extension SQLiteStore: JobQueue {
    public func claimJob(now: Date, lease: TimeInterval, ruleLimits: [String: Int], actions: Set<String>) async throws -> JobRecord? {
        guard !actions.isEmpty else { return nil }
        // Idle workers poll: a read first, so they take SQLite's single write lock (which ingest's group commit
        // needs) only when there is something to claim.
        let any = try await read("look for runnable jobs") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued' AND next_attempt_at <= ?)",
                              arguments: [now.timeIntervalSince1970]) ?? false
        }
        guard any else { return nil }
        return try await write("claim a job") { [owner] db in
            var busy: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT rule, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY rule") {
                busy[row["rule"]] = row["n"]
            }
            let full = ruleLimits.filter { (busy[$0.key] ?? 0) >= $0.value }.map(\.key)
            var sql = "SELECT id FROM jobs WHERE state = 'queued' AND next_attempt_at <= ? AND attempts < max_attempts AND action IN ("
                + actions.map { _ in "?" }.joined(separator: ",") + ")"
            var args: StatementArguments = [now.timeIntervalSince1970]
            for a in actions.sorted() { args += [a] }
            if !full.isEmpty {
                sql += " AND rule NOT IN (" + full.map { _ in "?" }.joined(separator: ",") + ")"
                for r in full { args += [r] }
            }
            sql += " ORDER BY seq LIMIT 1"
            guard let id = try String.fetchOne(db, sql: sql, arguments: args) else { return nil }
            try db.execute(sql: "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, lease_token = ?, lease_owner = ? WHERE id = ?",
                           arguments: [now.timeIntervalSince1970 + lease, UUID().uuidString.lowercased(), owner, id])
            return try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]).map(Self.job)
        }
    }

    @discardableResult
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                              callbacks: [NewCallback], countAttempt: Bool, leaseToken: String?) async throws -> Int {
        try await write("finish an attempt of job \(id)") { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT attempts, state, lease_token FROM jobs WHERE id = ?", arguments: [id]) else { return 0 }
            if let leaseToken, row["state"] != JobState.running.rawValue || row["lease_token"] != leaseToken {
                throw Self.leaseLost(id)
            }
            let attempts: Int = row["attempts"]
            try db.execute(sql: """
                INSERT OR REPLACE INTO job_attempts (job_id, number, started_at, ended_at, outcome, error) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [id, attempts, startedAt.timeIntervalSince1970, now.timeIntervalSince1970, state.rawValue, error])
            if !countAttempt {
                // The attempt stays in the history; the job gets it back (the next one reuses its number).
                try db.execute(sql: "UPDATE jobs SET attempts = max(0, attempts - 1) WHERE id = ?", arguments: [id])
            }
            try db.execute(sql: """
                UPDATE jobs SET state = ?, last_error = ?, result = coalesce(?, result), lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                       next_attempt_at = coalesce(?, next_attempt_at) WHERE id = ?
                """, arguments: [state.rawValue, error, result, retryAt?.timeIntervalSince1970, id])
            return try callbacks.filter { try !Self.insertCallback(db, $0, now: now) }.count
        }
    }

    public func renewLease(id: String, leaseToken: String, until: Date) async throws -> Bool {
        try await write("renew the lease of job \(id)") { db in
            try db.execute(sql: "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_token = ? AND state = 'running'",
                           arguments: [until.timeIntervalSince1970, id, leaseToken])
            return db.changesCount == 1
        }
    }

    /// What a fenced write by a worker that lost its lease throws.
    static func leaseLost(_ id: String) -> StoreError {
        StoreError(.leaseLost, "finish an attempt of job \(id)",
                   "this worker's lease was lost (it expired and the job was released or claimed again): its outcome is not written")
    }

    @discardableResult
    public func releaseExpiredLeases(now: Date) async throws -> Int {
        let any = try await read("look for expired leases") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'running' AND lease_until < ?)",
                              arguments: [now.timeIntervalSince1970]) ?? false
        }
        guard any else { return 0 }
        return try await write("release expired leases") { db in
            // A job that used every attempt without its outcome being recorded (its worker died each time, or the
            // outcome cannot be written) is parked, not run again without end.
            try db.execute(sql: """
                UPDATE jobs SET state = 'dead', parked = 1, lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                       last_error = ? || attempts || ' attempts: the worker died or its outcome could not be recorded' ||
                                    coalesce(' (last error: ' || last_error || ')', '')
                WHERE state = 'running' AND lease_until < ? AND attempts >= max_attempts
                """, arguments: [Parked.reason("its lease expired on each of its "), now.timeIntervalSince1970])
            let parked = db.changesCount
            try db.execute(sql: "UPDATE jobs SET state = 'queued', lease_until = NULL, lease_token = NULL, lease_owner = NULL WHERE state = 'running' AND lease_until < ?",
                           arguments: [now.timeIntervalSince1970])
            return parked + db.changesCount
        }
    }

    public func watching(now: Date, lease: TimeInterval) async throws -> [JobRecord] {
        let any = try await read("look for watching jobs") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'watching')") ?? false
        }
        guard any else { return [] }
        return try await write("hold watching jobs") { [owner] db in
            try db.execute(sql: """
                UPDATE jobs SET lease_owner = ?, lease_until = ?
                WHERE state = 'watching' AND (lease_owner = ? OR lease_owner IS NULL OR lease_until IS NULL OR lease_until < ?)
                """, arguments: [owner, now.timeIntervalSince1970 + lease, owner, now.timeIntervalSince1970])
            return try Row.fetchAll(db, sql: "SELECT * FROM jobs WHERE state = 'watching' AND lease_owner = ? ORDER BY seq",
                                    arguments: [owner]).map(Self.job)
        }
    }

    public func cancelRequested() async throws -> [JobRecord] {
        try await read("read jobs to cancel") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM jobs WHERE cancel_requested = 1 AND state = 'watching'").map(Self.job)
        }
    }

    @discardableResult
    public func finishWatch(id: String, state: JobState, error: String?, result: String, callbacks: [NewCallback]) async throws -> Int {
        let now = clock()
        return try await write("finish watching job \(id)") { db in
            try db.execute(sql: "UPDATE jobs SET state = ?, last_error = ?, result = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND state = 'watching'",
                           arguments: [state.rawValue, error, result, id])
            guard db.changesCount > 0 else { return 0 }
            return try callbacks.filter { try !Self.insertCallback(db, $0, now: now) }.count
        }
    }

    public func parkWatch(id: String, reason: String) async throws {
        try await write("park job \(id)") { db in
            try db.execute(sql: """
                UPDATE jobs SET state = 'dead', parked = 1, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND state = 'watching'
                """, arguments: [reason, id])
        }
    }

    static func job(_ row: Row) -> JobRecord {
        JobRecord(id: row["id"], idempotencyKey: row["idempotency_key"], eventID: row["event_id"], rule: row["rule"],
                  actionIndex: row["action_index"], action: row["action"], parameters: row["parameters"],
                  state: JobState(rawValue: row["state"]) ?? .queued, attempts: row["attempts"], maxAttempts: row["max_attempts"],
                  createdAt: Date(timeIntervalSince1970: row["created_at"]), lastError: row["last_error"], result: row["result"],
                  deliveryID: row["delivery_id"], retries: row["retries"], context: row["context"], parked: row["parked"], leaseToken: row["lease_token"],
                  leaseOwner: row["lease_owner"])
    }
}
