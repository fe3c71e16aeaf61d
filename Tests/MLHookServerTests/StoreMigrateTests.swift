import Foundation
import Logging
import MLHookCore
import Store
import TestSupport
import Testing

/// `mlhook store migrate`: a SQLite store copied into PostgreSQL and back, by the real binary.
@Suite struct StoreMigrateTests {
    @Test func aStoreMovesToPostgresAndBackWithEverythingItHolds() async throws {
        let dir = try TemporaryDirectory("mlhook-migrate")
        defer { dir.remove() }
        let database = try await TestPostgres.createDatabase()
        defer { database.drop() }

        // A SQLite store with events (one binary body), planned jobs in several states, attempts and callbacks.
        let sqlite = try SQLiteStore(path: dir.file("mlhook.db"), logger: Logger(label: "migrate"))
        let now = Date()
        var events: [InboundEvent] = []
        for i in 0..<7 {
            let body: [UInt8] = i == 3 ? [0xff, 0x00, 0xfe, 0x0a] : Array(#"{"ref":"refs/heads/main","n":\#(i)}"#.utf8)
            events.append(InboundEvent(id: EventID.make(at: now.addingTimeInterval(Double(i))), source: "github", kind: "push", deliveryID: "d-\(i)",
                                       headers: ["X-GitHub-Event": "push"], body: body, contentType: "application/json", receivedAt: now))
        }
        for e in events {
            let job = NewJob(idempotencyKey: "train#1@\(e.deliveryID)", eventID: e.id, rule: "train", actionIndex: 0, action: "score",
                             parameters: #"{"x":1}"#, maxAttempts: 3, supersedeScope: "r@\(e.deliveryID)")
            _ = try await sqlite.append(e, plan: PlanVerdict(id: e.id, state: .planned, plan: "[]", explanation: "rule train: matched"), jobs: [job])
        }
        for _ in 0..<3 {
            let j = try #require(try await sqlite.claimJob(now: Date(), lease: 60, ruleLimits: [:], actions: ["score"]))
            try await sqlite.finishAttempt(id: j.id, state: .succeeded, error: nil, result: #"{"ok":true}"#, retryAt: nil, startedAt: now, now: now,
                                           callbacks: [NewCallback(jobID: j.id, eventID: j.eventID, rule: "train", targetIndex: 0, kind: "url",
                                                                   url: "http://127.0.0.1:1/cb", credential: .env("CB"), body: "{}")],
                                           leaseToken: j.leaseToken)
        }
        let before = try await Self.snapshot(sqlite)

        let a = dir.file("a.yaml"), b = dir.file("b.yaml"), c = dir.file("c.yaml")
        let sources = "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]"
        try "store: { path: \"\(dir.file("mlhook.db"))\" }\n\(sources)\n".write(toFile: a, atomically: true, encoding: .utf8)
        try "store: { postgres: { url: { env: DB } } }\n\(sources)\n".write(toFile: b, atomically: true, encoding: .utf8)
        try "store: { path: \"\(dir.file("back/mlhook.db"))\" }\n\(sources)\n".write(toFile: c, atomically: true, encoding: .utf8)
        let env = ["GH": "x", "DB": database.url]

        let there = try await runMLHook(["store", "migrate", "--from", a, "--to", b, "--batch", "2"], environment: env, directory: dir.path)
        #expect(there.status == 0, "\(there.output)")
        for table in ["events: 7 rows", "jobs: 7 rows", "job_attempts: 3 rows", "callbacks: 3 rows"] {
            #expect(there.output.contains(table + " copied, checksums match"), "\(there.output)")
        }
        let postgres = try await StoreFactory.open(StoreConfig.postgresForTest(database.url), databaseURL: database.url, logger: Logger(label: "migrate"))
        defer { (postgres as? PostgresStore)?.close() }
        #expect(try await Self.snapshot(postgres) == before)
        // The dedup keys moved too: a redelivery is still a duplicate of the event stored before the move.
        let again = InboundEvent(id: EventID.make(), source: "github", kind: "push", deliveryID: "d-3", headers: [:], body: [1],
                                 contentType: "application/json", receivedAt: Date())
        #expect(try await postgres.append(again) == .duplicate(id: events[3].id))

        // A second run refuses the target that now holds the copy.
        let twice = try await runMLHook(["store", "migrate", "--from", a, "--to", b], environment: env, directory: dir.path)
        #expect(twice.status == 1 && twice.output.contains("not empty"), "\(twice.output)")

        // And back into a new SQLite store.
        let back = try await runMLHook(["store", "migrate", "--from", b, "--to", c], environment: env, directory: dir.path)
        #expect(back.status == 0, "\(back.output)")
        let returned = try SQLiteStore(path: dir.file("back/mlhook.db"), logger: Logger(label: "migrate"))
        #expect(try await Self.snapshot(returned) == before)
    }

    /// Everything a store shows an operator, with bodies.
    struct Snapshot: Equatable {
        let events: [StoredEvent]
        let jobs: [JobRecord]
        let attempts: [[JobAttempt]]
        let callbacks: [CallbackRecord]
    }

    static func snapshot(_ store: any MLHookStore) async throws -> Snapshot {
        var events: [StoredEvent] = []
        for e in try await store.events(EventQuery()) { events.append(try #require(try await store.event(id: e.id))) }
        var jobs = try await store.jobs(JobQuery())
        for i in jobs.indices { jobs[i].leaseToken = nil }
        var attempts: [[JobAttempt]] = []
        for j in jobs { attempts.append(try await store.attempts(jobID: j.id)) }
        return Snapshot(events: events, jobs: jobs, attempts: attempts, callbacks: try await store.callbacks(CallbackQuery()))
    }
}

extension StoreConfig {
    static func postgresForTest(_ url: String) -> StoreConfig {
        var c = StoreConfig()
        c.backend = .postgres(.init(url: .literal(url), ingestTimeoutMilliseconds: 20_000))
        return c
    }
}
