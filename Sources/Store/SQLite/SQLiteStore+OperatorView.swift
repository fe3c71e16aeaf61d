import Foundation
import GRDB

extension SQLiteStore: OperatorView, StoreStatistics {
    public func events(_ q: EventQuery) async throws -> [EventSummary] {
        try await read("list events") { db in
            var w = Filter(table: "events")
            w.add("source", q.source); w.add("kind", q.kind); w.add("state", q.state?.rawValue); w.before(q.before)
            return try Row.fetchAll(db, sql: "SELECT id, source, kind, delivery_id, state, received_at, body_bytes AS n FROM events"
                                    + w.sql(limit: q.limit), arguments: w.arguments).map(Self.summary)
        }
    }

    public func jobs(_ q: JobQuery) async throws -> [JobRecord] {
        try await read("list jobs") { db in
            var w = Filter(table: "jobs")
            w.add("state", q.state?.rawValue); w.add("rule", q.rule); w.add("event_id", q.eventID); w.before(q.before)
            return try Row.fetchAll(db, sql: "SELECT * FROM jobs" + w.sql(limit: q.limit), arguments: w.arguments).map(Self.job)
        }
    }

    public func job(id: String) async throws -> JobRecord? {
        try await read("read job \(id)") { db in try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = ?", arguments: [id]).map(Self.job) }
    }

    public func attempts(jobID: String) async throws -> [JobAttempt] {
        try await read("read attempts of job \(jobID)") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM job_attempts WHERE job_id = ? ORDER BY number", arguments: [jobID]).map { row in
                JobAttempt(number: row["number"], startedAt: Date(timeIntervalSince1970: row["started_at"]),
                           endedAt: Date(timeIntervalSince1970: row["ended_at"]), outcome: JobState(rawValue: row["outcome"]) ?? .failed,
                           error: row["error"])
            }
        }
    }

    public func retryJob(id: String) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        return try await write("retry job \(id)") { db in
            try db.execute(sql: """
                UPDATE jobs SET state = 'queued', max_attempts = attempts + max_attempts, retries = retries + 1, parked = 0, next_attempt_at = ?, last_error = NULL
                WHERE id = ? AND state IN ('failed', 'dead')
                """, arguments: [now, id])
            return db.changesCount == 1
        }
    }

    public func cancelJob(id: String, reason: String) async throws -> JobCancellation {
        try await write("cancel job \(id)") { db in
            try db.execute(sql: "UPDATE jobs SET state = 'failed', last_error = ? WHERE id = ? AND state = 'queued'", arguments: [reason, id])
            if db.changesCount == 1 { return .canceled }
            try db.execute(sql: "UPDATE jobs SET cancel_requested = 1, last_error = ? WHERE id = ? AND state IN ('running', 'watching')",
                           arguments: [reason, id])
            if db.changesCount == 1 { return .requested }
            let state: String? = try String.fetchOne(db, sql: "SELECT state FROM jobs WHERE id = ?", arguments: [id])
            return state.map { .ended(JobState(rawValue: $0) ?? .failed) } ?? .notFound
        }
    }

    public func callbacks(_ q: CallbackQuery) async throws -> [CallbackRecord] {
        try await read("list callbacks") { db in
            var w = Filter(table: "callbacks")
            w.add("state", q.state?.rawValue); w.add("kind", q.kind); w.add("event_id", q.eventID); w.add("job_id", q.jobID); w.before(q.before)
            return try Row.fetchAll(db, sql: "SELECT * FROM callbacks" + w.sql(limit: q.limit), arguments: w.arguments).map(Self.callback)
        }
    }

    public func callback(id: String) async throws -> CallbackRecord? {
        try await read("read callback \(id)") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM callbacks WHERE id = ?", arguments: [id]).map(Self.callback)
        }
    }

    public func replayCallback(id: String) async throws -> Bool {
        let now = clock().timeIntervalSince1970
        return try await write("replay callback \(id)") { db in
            try db.execute(sql: "UPDATE callbacks SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE id = ?", arguments: [now, id])
            return db.changesCount == 1
        }
    }

    public func explanations(ids: [String]) async throws -> [String: String] {
        guard !ids.isEmpty else { return [:] }
        return try await read("read explanations") { db in
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
        try await read("count rows") { db in
            func grouped(_ table: String) throws -> [String: Int] {
                var out: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT state, count(*) AS n FROM \(table) GROUP BY state") { out[row["state"]] = row["n"] }
                return out
            }
            // Events: only the planning backlog (a partial index), not a scan of the whole inbox.
            let backlog = try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE state = 'received'") ?? 0
            // Parked events are the only failed ones (a partial index); parked jobs are dead ones with the prefix.
            let parkedEvents = try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE state = 'failed'") ?? 0
            let parkedJobs = try Int.fetchOne(db, sql: "SELECT count(*) FROM jobs WHERE state = 'dead' AND parked = 1") ?? 0
            return StoreCounts(jobs: try grouped("jobs"), callbacks: try grouped("callbacks"),
                               events: ["received": backlog], parked: ["event": parkedEvents, "job": parkedJobs])
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
}
