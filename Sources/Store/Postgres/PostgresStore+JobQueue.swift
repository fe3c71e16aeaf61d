import Foundation
import Logging
import MLHookCore
import PostgresNIO

extension PostgresStore: JobQueue {
    public func claimJob(now: Date, lease: TimeInterval, ruleLimits: [String: Int], actions: Set<String>) async throws -> JobRecord? {
        guard !actions.isEmpty else { return nil }
        let (at, until, token, owner) = (now.timeIntervalSince1970, now.timeIntervalSince1970 + lease, UUID().uuidString.lowercased(), self.owner)
        let actionList = actions.sorted()
        let logger = self.logger
        /// The claim: one statement, the row lock taken with SKIP LOCKED so concurrent claimers (any replica) take
        /// different jobs; MATERIALIZED so the planner cannot re-run the LIMIT subquery and take more than one (Oban).
        @Sendable func claim(_ conn: PostgresConnection, skipping full: [String]) async throws -> JobRecord? {
            try await Self.rows(conn, """
                WITH c AS MATERIALIZED (
                    SELECT id FROM jobs
                    WHERE state = 'queued' AND next_attempt_at <= \(at) AND attempts < max_attempts
                      AND action = ANY(\(actionList)) AND NOT (rule = ANY(\(full)))
                    ORDER BY seq LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED)
                UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, lease_until = \(until), lease_token = \(token),
                       lease_owner = \(owner)
                FROM c WHERE j.id = c.id RETURNING j.*
                """, logger).first.map(Self.job)
        }
        if ruleLimits.isEmpty {
            return try await withConnection("claim a job") { conn in try await claim(conn, skipping: []) }
        }
        // A rule's concurrency counts running jobs on every replica: claims that must count are serialized by one
        // advisory transaction lock (a claim is a few milliseconds), so two replicas cannot both take the last slot.
        return try await transaction("claim a job") { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(\(Self.claimLock))", logger: logger)
            var busy: [String: Int] = [:]
            for row in try await Self.rows(conn, "SELECT rule, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY rule", logger) {
                busy[try row["rule"].decode(String.self)] = try row["n"].decode(Int.self)
            }
            let full = ruleLimits.filter { (busy[$0.key] ?? 0) >= $0.value }.map(\.key).sorted()
            return try await claim(conn, skipping: full)
        }
    }

    /// The advisory lock claims under a concurrency limit hold.
    static let claimLock = 0x6d6c_686f_6f6c  // "mlhool"

    @discardableResult
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                              callbacks: [NewCallback], countAttempt: Bool, leaseToken: String?) async throws -> Int {
        let logger = self.logger
        return try await transaction("finish an attempt of job \(id)") { conn in
            guard let row = try await Self.rows(conn, "SELECT attempts, state, lease_token FROM jobs WHERE id = \(id) FOR UPDATE", logger).first
            else { return 0 }
            if let leaseToken, try row["state"].decode(String.self) != JobState.running.rawValue
                || row["lease_token"].decode(String?.self) != leaseToken {
                throw StoreError(.leaseLost, "finish an attempt of job \(id)",
                                 "this worker's lease was lost (it expired and the job was released or claimed again): its outcome is not written")
            }
            let attempts = try row["attempts"].decode(Int.self)
            try await conn.query("""
                INSERT INTO job_attempts (job_id, number, started_at, ended_at, outcome, error)
                VALUES (\(id), \(attempts), \(startedAt.timeIntervalSince1970), \(now.timeIntervalSince1970), \(state.rawValue), \(error))
                ON CONFLICT (job_id, number) DO UPDATE SET started_at = excluded.started_at, ended_at = excluded.ended_at,
                                                         outcome = excluded.outcome, error = excluded.error
                """, logger: logger)
            let give = countAttempt ? 0 : 1  // an attempt cut short by shutdown: the job gets it back
            try await conn.query("""
                UPDATE jobs SET state = \(state.rawValue), last_error = \(error), result = coalesce(\(result), result), lease_until = NULL,
                       lease_token = NULL, lease_owner = NULL, attempts = greatest(0, attempts - \(give)),
                       next_attempt_at = coalesce(\(retryAt?.timeIntervalSince1970), next_attempt_at)
                WHERE id = \(id)
                """, logger: logger)
            var refused = 0
            for c in callbacks where try await !Self.insertCallback(conn, c, now: now, logger: logger) { refused += 1 }
            if state == .queued { try await Self.notifyJobs(conn, logger) }
            return refused
        }
    }

    public func waitForWork() async {
        // Jittered, so idle replicas do not poll in step; a notification ends the wait at once.
        await jobsReady.wait(upTo: .milliseconds(Int.random(in: 1000...2000)))
    }

    public func renewLease(id: String, leaseToken: String, until: Date) async throws -> Bool {
        try await withConnection("renew the lease of job \(id)") { [logger] conn in
            try await !Self.rows(conn, """
                UPDATE jobs SET lease_until = \(until.timeIntervalSince1970)
                WHERE id = \(id) AND lease_token = \(leaseToken) AND state = 'running' RETURNING 1 AS one
                """, logger).isEmpty
        }
    }

    @discardableResult
    public func releaseExpiredLeases(now: Date) async throws -> Int {
        let at = now.timeIntervalSince1970
        let parkedReason = Parked.reason("its lease expired on each of its ")
        let logger = self.logger
        return try await transaction("release expired leases") { conn in
            // Any replica may rescue; SKIP LOCKED lets two rescuers share the rows instead of waiting on each other.
            // A job that used every attempt without its outcome being recorded is parked, not run again without end.
            let parked = try await Self.rows(conn, """
                UPDATE jobs SET state = 'dead', parked = true, lease_until = NULL, lease_token = NULL, lease_owner = NULL,
                       last_error = \(parkedReason) || attempts || ' attempts: the worker died or its outcome could not be recorded' ||
                                    coalesce(' (last error: ' || last_error || ')', '')
                WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until < \(at) AND attempts >= max_attempts
                             LIMIT 500 FOR NO KEY UPDATE SKIP LOCKED)
                RETURNING 1 AS one
                """, logger).count
            let released = try await Self.rows(conn, """
                UPDATE jobs SET state = 'queued', lease_until = NULL, lease_token = NULL, lease_owner = NULL
                WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until < \(at) LIMIT 500 FOR NO KEY UPDATE SKIP LOCKED)
                RETURNING 1 AS one
                """, logger).count
            if released > 0 { try await Self.notifyJobs(conn, logger) }
            return parked + released
        }
    }

    public func watching(now: Date, lease: TimeInterval) async throws -> [JobRecord] {
        let (at, until, owner) = (now.timeIntervalSince1970, now.timeIntervalSince1970 + lease, self.owner)
        return try await withConnection("hold watching jobs") { [logger] conn in
            // In the order the jobs were made (seq), as SQLite answers: not by created_at, which ties within a batch.
            try await Self.rows(conn, """
                WITH held AS (
                    UPDATE jobs SET lease_owner = \(owner), lease_until = \(until)
                    WHERE id IN (SELECT id FROM jobs WHERE state = 'watching'
                                   AND (lease_owner = \(owner) OR lease_owner IS NULL OR lease_until IS NULL OR lease_until < \(at))
                                 FOR NO KEY UPDATE SKIP LOCKED)
                    RETURNING *)
                SELECT * FROM held ORDER BY seq
                """, logger).map(Self.job)
        }
    }

    public func cancelRequested() async throws -> [JobRecord] {
        try await withConnection("read jobs to cancel") { [logger] conn in
            try await Self.rows(conn, "SELECT * FROM jobs WHERE cancel_requested AND state = 'watching'", logger).map(Self.job)
        }
    }

    @discardableResult
    public func finishWatch(id: String, state: JobState, error: String?, result: String, callbacks: [NewCallback]) async throws -> Int {
        let now = clock()
        let logger = self.logger
        return try await transaction("finish watching job \(id)") { conn in
            // Only the first replica to see the run end finishes the job (and queues its callbacks).
            guard try await !Self.rows(conn, """
                UPDATE jobs SET state = \(state.rawValue), last_error = \(error), result = \(result), lease_owner = NULL, lease_until = NULL
                WHERE id = \(id) AND state = 'watching' RETURNING 1 AS one
                """, logger).isEmpty else { return 0 }
            var refused = 0
            for c in callbacks where try await !Self.insertCallback(conn, c, now: now, logger: logger) { refused += 1 }
            return refused
        }
    }

    public func parkWatch(id: String, reason: String) async throws {
        try await withConnection("park job \(id)") { [logger] conn in
            _ = try await Self.rows(conn, """
                UPDATE jobs SET state = 'dead', parked = true, last_error = \(reason), lease_owner = NULL, lease_until = NULL
                WHERE id = \(id) AND state = 'watching' RETURNING 1 AS one
                """, logger)
        }
    }

    static func job(_ row: PostgresRandomAccessRow) throws -> JobRecord {
        JobRecord(id: try row["id"].decode(String.self), idempotencyKey: try row["idempotency_key"].decode(String.self),
                  eventID: try row["event_id"].decode(String.self), rule: try row["rule"].decode(String.self),
                  actionIndex: try row["action_index"].decode(Int.self), action: try row["action"].decode(String.self),
                  parameters: try row["parameters"].decode(String.self),
                  state: JobState(rawValue: try row["state"].decode(String.self)) ?? .queued, attempts: try row["attempts"].decode(Int.self),
                  maxAttempts: try row["max_attempts"].decode(Int.self), createdAt: Date(timeIntervalSince1970: try row["created_at"].decode(Double.self)),
                  lastError: try row["last_error"].decode(String?.self), result: try row["result"].decode(String?.self),
                  deliveryID: try row["delivery_id"].decode(String?.self),
                  retries: try row["retries"].decode(Int.self), context: try row["context"].decode(String?.self),
                  parked: try row["parked"].decode(Bool.self), leaseToken: try row["lease_token"].decode(String?.self),
                  leaseOwner: try row["lease_owner"].decode(String?.self))
    }
}
