import Foundation
import Logging
import MLHookCore
import PostgresNIO

extension PostgresStore: OperatorView, StoreStatistics {
    public func events(_ q: EventQuery) async throws -> [EventSummary] {
        var w = Filter(table: "events")
        w.add("source", q.source); w.add("kind", q.kind); w.add("state", q.state?.rawValue); w.before(q.before)
        let query = w.query("SELECT id, source, kind, delivery_id, state, received_at, body_bytes FROM events", limit: q.limit)
        return try await withConnection("list events") { [logger] conn in try await Self.rows(conn, query, logger).map(Self.summary) }
    }

    public func jobs(_ q: JobQuery) async throws -> [JobRecord] {
        var w = Filter(table: "jobs")
        w.add("state", q.state?.rawValue); w.add("rule", q.rule); w.add("event_id", q.eventID); w.before(q.before)
        let query = w.query("SELECT * FROM jobs", limit: q.limit)
        return try await withConnection("list jobs") { [logger] conn in try await Self.rows(conn, query, logger).map(Self.job) }
    }

    public func job(id: String) async throws -> JobRecord? {
        try await withConnection("read job \(id)") { [logger] conn in
            try await Self.rows(conn, "SELECT * FROM jobs WHERE id = \(id)", logger).first.map(Self.job)
        }
    }

    public func attempts(jobID: String) async throws -> [JobAttempt] {
        try await withConnection("read attempts of job \(jobID)") { [logger] conn in
            try await Self.rows(conn, "SELECT * FROM job_attempts WHERE job_id = \(jobID) ORDER BY number", logger).map { row in
                JobAttempt(number: try row["number"].decode(Int.self),
                           startedAt: Date(timeIntervalSince1970: try row["started_at"].decode(Double.self)),
                           endedAt: Date(timeIntervalSince1970: try row["ended_at"].decode(Double.self)),
                           outcome: JobState(rawValue: try row["outcome"].decode(String.self)) ?? .failed,
                           error: try row["error"].decode(String?.self))
            }
        }
    }

    public func cancelJob(id: String, reason: String) async throws -> JobCancellation {
        let logger = self.logger
        return try await transaction("cancel job \(id)") { conn in
            if try await !Self.rows(conn, """
                UPDATE jobs SET state = 'failed', last_error = \(reason) WHERE id = \(id) AND state = 'queued' RETURNING 1 AS one
                """, logger).isEmpty { return .canceled }
            if try await !Self.rows(conn, """
                UPDATE jobs SET cancel_requested = true, last_error = \(reason)
                WHERE id = \(id) AND state IN ('running', 'watching') RETURNING 1 AS one
                """, logger).isEmpty { return .requested }
            let state = try await Self.rows(conn, "SELECT state FROM jobs WHERE id = \(id)", logger).first.map { try $0["state"].decode(String.self) }
            return state.map { .ended(JobState(rawValue: $0) ?? .failed) } ?? .notFound
        }
    }

    public func retryJob(id: String) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        let logger = self.logger
        return try await transaction("retry job \(id)") { conn in
            let changed = try await Self.rows(conn, """
                UPDATE jobs SET state = 'queued', max_attempts = attempts + max_attempts, retries = retries + 1, parked = false, next_attempt_at = \(now),
                    last_error = NULL
                WHERE id = \(id) AND state IN ('failed', 'dead') RETURNING 1 AS one
                """, logger).count == 1
            if changed { try await Self.notifyJobs(conn, logger) }
            return changed
        }
    }

    public func callbacks(_ q: CallbackQuery) async throws -> [CallbackRecord] {
        var w = Filter(table: "callbacks")
        w.add("state", q.state?.rawValue); w.add("kind", q.kind); w.add("event_id", q.eventID); w.add("job_id", q.jobID); w.before(q.before)
        let query = w.query("SELECT * FROM callbacks", limit: q.limit)
        return try await withConnection("list callbacks") { [logger] conn in try await Self.rows(conn, query, logger).map { try Self.callback($0).record } }
    }

    public func callback(id: String) async throws -> CallbackRecord? {
        try await withConnection("read callback \(id)") { [logger] conn in
            try await Self.rows(conn, "SELECT * FROM callbacks WHERE id = \(id)", logger).first.map { try Self.callback($0).record }
        }
    }

    public func replayCallback(id: String) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        return try await withConnection("replay callback \(id)") { [logger] conn in
            try await Self.rows(conn, """
                UPDATE callbacks SET state = 'pending', attempts = 0, next_attempt_at = \(now) WHERE id = \(id) RETURNING 1 AS one
                """, logger).count == 1
        }
    }

    public func explanations(ids: [String]) async throws -> [String: String] {
        guard !ids.isEmpty else { return [:] }
        return try await withConnection("read explanations") { [logger] conn in
            var out: [String: String] = [:]
            for row in try await Self.rows(conn, "SELECT id, explanation FROM events WHERE id = ANY(\(ids)) AND explanation IS NOT NULL", logger) {
                out[try row["id"].decode(String.self)] = try row["explanation"].decode(String.self)
            }
            return out
        }
    }

    public func counts() async throws -> StoreCounts {
        try await withConnection("count rows") { [logger] conn in
            func grouped(_ table: String) async throws -> [String: Int] {
                var out: [String: Int] = [:]
                for row in try await Self.rows(conn, "SELECT state, count(*) AS n FROM \(unescaped: table) GROUP BY state", logger) {
                    out[try row["state"].decode(String.self)] = try row["n"].decode(Int.self)
                }
                return out
            }
            func count(_ query: PostgresQuery) async throws -> Int { try await Self.rows(conn, query, logger).first?["n"].decode(Int.self) ?? 0 }
            let backlog = try await count("SELECT count(*) AS n FROM events WHERE state = 'received'")
            let parkedEvents = try await count("SELECT count(*) AS n FROM events WHERE state = 'failed'")
            let parkedJobs = try await count("SELECT count(*) AS n FROM jobs WHERE state = 'dead' AND parked")
            return StoreCounts(jobs: try await grouped("jobs"), callbacks: try await grouped("callbacks"),
                               events: ["received": backlog], parked: ["event": parkedEvents, "job": parkedJobs])
        }
    }

    /// A WHERE clause built from optional equality filters and a `before` cursor, with its binds.
    struct Filter {
        let table: String
        var clauses: [String] = []
        var binds = PostgresBindings()
        init(table: String) { self.table = table }
        mutating func add(_ column: String, _ value: String?) {
            guard let value else { return }
            binds.append(value)
            clauses.append("\(column) = $\(binds.count)")
        }
        mutating func before(_ id: String?) {
            guard let id else { return }
            binds.append(id)
            clauses.append("seq < coalesce((SELECT seq FROM \(table) WHERE id = $\(binds.count)), 0)")
        }
        func query(_ select: String, limit: Int?) -> PostgresQuery {
            var sql = select + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")) + " ORDER BY seq DESC"
            if let limit { sql += " LIMIT \(max(0, limit))" }
            return PostgresQuery(unsafeSQL: sql, binds: binds)
        }
    }
}
