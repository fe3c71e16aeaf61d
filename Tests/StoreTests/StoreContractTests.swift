import Foundation
import Logging
import MLHookCore
import Store
import TestSupport
import Testing

/// One store backend the contract suite runs against: every test below runs against each.
struct StoreBackend: Sendable, CustomTestStringConvertible {
    let name: String
    let open: @Sendable (_ clock: ManualClock) async throws -> (store: any MLHookStore, close: @Sendable () -> Void)
    var testDescription: String { name }

    static let sqlite = StoreBackend(name: "sqlite", open: { clock in
        let dir = try TemporaryDirectory("mlhook-contract")
        var config = StoreConfig()
        config.backend = .sqlite(.init(path: dir.file("mlhook.db")))
        return (try await StoreFactory.open(config, clock: clock.read, logger: Logger(label: "contract")), { dir.remove() })
    }, openTwo: { clock in
        let dir = try TemporaryDirectory("mlhook-contract")
        var config = StoreConfig()
        config.backend = .sqlite(.init(path: dir.file("mlhook.db")))
        let first = try await StoreFactory.open(config, clock: clock.read, logger: Logger(label: "contract"))
        let second = try await StoreFactory.open(config, background: false, clock: clock.read, logger: Logger(label: "contract"))
        return (first, second, { dir.remove() })
    })

    /// A database of its own per test, in the cluster scripts/test.sh starts (`MLHOOK_TEST_DATABASE_URL`).
    static let postgres = StoreBackend(name: "postgres", open: { clock in
        let database = try await TestPostgres.createDatabase()
        let store = try await openPostgres(database, clock)
        return (store, {
            (store as? PostgresStore)?.close()
            database.drop()
        })
    }, openTwo: { clock in
        let database = try await TestPostgres.createDatabase()
        let first = try await openPostgres(database, clock)
        let second = try await openPostgres(database, clock)
        return (first, second, {
            (first as? PostgresStore)?.close()
            (second as? PostgresStore)?.close()
            database.drop()
        })
    })

    static func openPostgres(_ database: TestPostgres.Database, _ clock: ManualClock) async throws -> any MLHookStore {
        var config = StoreConfig()
        // The contract is not about timing: a loaded test machine may take more than ingest's 1 s for a commit.
        config.backend = .postgres(.init(url: .literal(database.url), ingestTimeoutMilliseconds: 20_000))
        return try await StoreFactory.open(config, databaseURL: database.url, clock: clock.read, logger: Logger(label: "contract"))
    }

    /// Two store instances on the same data, as two replicas (or, for SQLite, two processes) see it.
    let openTwo: @Sendable (_ clock: ManualClock) async throws -> (first: any MLHookStore, second: any MLHookStore, close: @Sendable () -> Void)

    init(name: String, open: @escaping @Sendable (_ clock: ManualClock) async throws -> (store: any MLHookStore, close: @Sendable () -> Void),
         openTwo: @escaping @Sendable (_ clock: ManualClock) async throws -> (first: any MLHookStore, second: any MLHookStore, close: @Sendable () -> Void)) {
        self.name = name
        self.open = open
        self.openTwo = openTwo
    }

    static let all: [StoreBackend] = [.sqlite, .postgres]
}

/// What every store backend promises, role by role: the same tests, whatever keeps the data.
@Suite struct StoreContractTests {
    static func event(_ delivery: String, source: String = "github", body: String = #"{"ref":"refs/heads/main"}"#,
                      at date: Date) -> InboundEvent {
        InboundEvent(id: EventID.make(at: date), source: source, kind: "push", deliveryID: delivery, headers: ["X-GitHub-Event": "push"],
                     body: Array(body.utf8), contentType: "application/json", receivedAt: date)
    }

    static func job(_ key: String, event: String, rule: String = "train", action: String = "start_run", maxAttempts: Int = 3,
                    scope: String? = nil) -> NewJob {
        NewJob(idempotencyKey: key, eventID: event, rule: rule, actionIndex: 0, action: action, parameters: #"{"name":"x"}"#,
               maxAttempts: maxAttempts, supersedeScope: scope)
    }

    static func planned(_ id: String) -> PlanVerdict {
        PlanVerdict(id: id, state: .planned, plan: "[]", explanation: "rule train: matched")
    }

    // MARK: Inbox

    @Test(arguments: StoreBackend.all)
    func appendIsIdempotentPerSourceAndDeliveryID(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let first = Self.event("d-1", at: clock.now)
        #expect(try await store.append(first) == .stored(id: first.id))
        // A redelivery (new event id, same delivery) is the first event; another source with the same id is not.
        let again = Self.event("d-1", body: #"{"other":true}"#, at: clock.now)
        #expect(try await store.append(again) == .duplicate(id: first.id))
        let elsewhere = Self.event("d-1", source: "gitlab", at: clock.now)
        #expect(try await store.append(elsewhere) == .stored(id: elsewhere.id))
        let stored = try #require(try await store.event(id: first.id))
        #expect(stored.body == first.body && stored.headers == first.headers && stored.summary.deliveryID == "d-1")
        #expect(try await store.event(id: again.id) == nil)
        #expect(try await store.events(EventQuery()).count == 2)
    }

    /// A record the database refuses (here a NUL in text, which PostgreSQL refuses with 22021; ingress refuses it
    /// first, this is the second wall) fails alone: the events committed in the same group are stored.
    @Test(arguments: StoreBackend.all)
    func aRecordTheDatabaseRefusesFailsAloneNotItsBatchMates(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let outcomes = await withTaskGroup(of: (Bool, Bool).self) { group in
            for i in 0..<40 {
                group.addTask {
                    let e = Self.event("clean-\(i)", at: clock.now)
                    return (true, (try? await store.append(e, plan: Self.planned(e.id), jobs: [])) != nil)
                }
            }
            group.addTask {
                let e = Self.event("bad", at: clock.now)
                let verdict = PlanVerdict(id: e.id, state: .planned, plan: "[]", explanation: "branch ma\u{0}in")
                return (false, (try? await store.append(e, plan: verdict, jobs: [])) != nil)
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { $0.0 }.allSatisfy { $0.1 }, "\(outcomes.filter { $0.0 && !$0.1 }.count) clean events failed with the bad one")
        #expect(try await store.events(EventQuery(limit: 100)).filter { $0.deliveryID.hasPrefix("clean-") }.count == 40)
    }

    @Test(arguments: StoreBackend.all)
    func concurrentRedeliveriesStoreOneEvent(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let outcomes = try await withThrowingTaskGroup(of: AppendOutcome.self) { group in
            for _ in 0..<20 { group.addTask { try await store.append(Self.event("same", at: clock.now)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let stored = outcomes.filter { if case .stored = $0 { true } else { false } }
        #expect(stored.count == 1)
        #expect(Set(outcomes.map(\.id)).count == 1, "every duplicate names the stored event")
        #expect(try await store.events(EventQuery()).count == 1)
    }

    @Test(arguments: StoreBackend.all)
    func plansAreRecordedWithTheirJobsOnce(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        // Stored without a plan: the planner finds it, records it with its job, and it is no longer pending.
        let e = Self.event("d-1", at: clock.now)
        _ = try await store.append(e)
        #expect(try await store.unplanned(limit: 10).map(\.summary.id) == [e.id])
        let job = Self.job("train#0@git:r@abc", event: e.id)
        #expect(try await store.recordPlans([Self.planned(e.id)], jobs: [job]) == 1)
        #expect(try await store.unplanned(limit: 10).isEmpty)
        let stored = try #require(try await store.event(id: e.id))
        #expect(stored.summary.state == .planned && stored.explanation == "rule train: matched" && stored.plan == "[]")
        // The same commit through another hook: same idempotency key, no second job.
        let other = Self.event("d-2", at: clock.now)
        #expect(try await store.append(other, plan: Self.planned(other.id), jobs: [Self.job("train#0@git:r@abc", event: other.id)]) == .stored(id: other.id))
        // Stored planned at ingress: never pending, and a duplicate delivery creates nothing.
        let third = Self.event("d-3", at: clock.now)
        _ = try await store.append(third, plan: Self.planned(third.id), jobs: [Self.job("k3", event: third.id)])
        _ = try await store.append(Self.event("d-3", at: clock.now), plan: Self.planned("x"), jobs: [Self.job("k3-again", event: "x")])
        #expect(try await store.unplanned(limit: 10).isEmpty)
        let jobs = try await store.jobs(JobQuery())
        #expect(Set(jobs.map(\.idempotencyKey)) == ["train#0@git:r@abc", "k3"])
        #expect(jobs.first { $0.idempotencyKey == "k3" }?.deliveryID == "d-3", "a job knows its delivery")
        #expect(jobs.allSatisfy { $0.id.hasPrefix("job_") && $0.createdAt == clock.now })
        #expect(try await store.explanations(ids: [e.id, third.id, "evt_none"]) == [e.id: "rule train: matched", third.id: "rule train: matched"])
    }

    @Test(arguments: StoreBackend.all)
    func eventListsPageWithBefore(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        var ids: [String] = []
        for i in 0..<5 {
            let e = Self.event("d-\(i)", source: i % 2 == 0 ? "github" : "gitlab", at: clock.now)
            _ = try await store.append(e)
            ids.append(e.id)
            clock.advance(1)
        }
        let first = try await store.events(EventQuery(limit: 2))
        #expect(first.map(\.id) == [ids[4], ids[3]])
        let next = try await store.events(EventQuery(limit: 2, before: first.last?.id))
        #expect(next.map(\.id) == [ids[2], ids[1]])
        #expect(try await store.events(EventQuery(before: ids[1])).map(\.id) == [ids[0]])
        #expect(try await store.events(EventQuery(source: "gitlab")).map(\.id) == [ids[3], ids[1]])
    }

    @Test(arguments: StoreBackend.all)
    func pruningForgetsOldEventsAndTheirDedupKeys(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let old = Self.event("old", at: clock.now)
        _ = try await store.append(old)
        clock.advance(86_400)
        let recent = Self.event("recent", at: clock.now)
        _ = try await store.append(recent)
        #expect(try await store.prune(receivedBefore: clock.now.addingTimeInterval(-3600)) == 1)
        #expect(try await store.event(id: old.id) == nil)
        #expect(try await store.event(id: recent.id)?.body == recent.body)
        // The old delivery id may be stored again; the recent one is still a duplicate.
        let replay = Self.event("old", at: clock.now)
        #expect(try await store.append(replay) == .stored(id: replay.id))
        #expect(try await store.append(Self.event("recent", at: clock.now)) == .duplicate(id: recent.id))
        #expect(await store.isReady())
    }

    @Test(arguments: StoreBackend.all)
    func pruningForgetsFinishedJobsAndCallbacksButNotWorkInProgress(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let old = Self.event("old", at: clock.now)
        let done = Self.job("done", event: old.id, action: "scale_compute"), busy = Self.job("busy", event: old.id, action: "delete_model")
        _ = try await store.append(old, plan: Self.planned(old.id), jobs: [done, busy])
        let claimed = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["scale_compute"]))
        try await store.finishAttempt(id: claimed.id, state: .succeeded, error: nil, result: "{}", retryAt: nil, startedAt: clock.now, now: clock.now,
                                      callbacks: [NewCallback(jobID: claimed.id, eventID: old.id, rule: "train", targetIndex: 0, kind: "slack",
                                                              url: "https://hooks.slack.com/x", body: "{}")])
        let callback = try #require(try await store.dueCallbacks(now: clock.now, limit: 10).first)
        try await store.recordDelivery(id: callback.id, state: .delivered, status: 200, error: nil, retryAt: nil)
        clock.advance(40 * 86_400)
        #expect(try await store.prune(receivedBefore: clock.now.addingTimeInterval(-30 * 86_400)) == 1)
        let left = try await store.jobs(limit: nil, state: nil)
        #expect(left.map(\.idempotencyKey) == [busy.idempotencyKey], "the finished job went, the queued one stays")
        #expect(try await store.attempts(jobID: claimed.id).isEmpty)
        #expect(try await store.callbacks(limit: nil, state: nil).isEmpty)
    }

    // MARK: Job queue

    @Test(arguments: StoreBackend.all)
    func claimsLeasesExpireAndAttemptsRunOut(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: [Self.job("k", event: e.id, action: "score", maxAttempts: 3)])
        // Only workers that perform the action claim it.
        #expect(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]) == nil)
        let claimed = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["score"]))
        #expect(claimed.state == .running && claimed.attempts == 1)
        #expect(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["score"]) == nil, "held by its lease")
        // The worker died: the lease expires and the job is claimable again, with its second attempt.
        #expect(try await store.releaseExpiredLeases(now: clock.now.addingTimeInterval(30)) == 0)
        clock.advance(61)
        #expect(try await store.releaseExpiredLeases(now: clock.now) == 1)
        let second = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["score"]))
        #expect(second.id == claimed.id && second.attempts == 2)
        // A retry waits for its time.
        let started = clock.now
        try await store.finishAttempt(id: second.id, state: .queued, error: "HTTP 503", result: nil, retryAt: clock.now.addingTimeInterval(10),
                                      startedAt: started, now: clock.now)
        #expect(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["score"]) == nil)
        let third = try #require(try await store.claimJob(now: clock.now.addingTimeInterval(10), lease: 60, ruleLimits: [:], actions: ["score"]))
        try await store.finishAttempt(id: third.id, state: .dead, error: "HTTP 503 again", result: nil, retryAt: nil, startedAt: started, now: clock.now)
        let dead = try #require(try await store.job(id: claimed.id))
        #expect(dead.state == .dead && dead.lastError == "HTTP 503 again")
        #expect(try await store.attempts(jobID: claimed.id).map(\.outcome) == [.queued, .dead])
        // An operator retry gives it a fresh set of attempts; a job that is not failed or dead is not retried.
        // It counts the retries (a run-starting action names its new run after the count), in the claim too.
        #expect(dead.retries == 0)
        #expect(try await store.retryJob(id: claimed.id))
        #expect(try await store.job(id: claimed.id)?.state == .queued)
        #expect(try await store.retryJob(id: claimed.id) == false)
        let retried = try #require(try await store.claimJob(now: clock.now.addingTimeInterval(10), lease: 60, ruleLimits: [:], actions: ["score"]))
        #expect(retried.id == claimed.id && retried.retries == 1)
        try await store.finishAttempt(id: retried.id, state: .failed, error: "still failing", result: nil, retryAt: nil, startedAt: started, now: clock.now,
                                      callbacks: [], leaseToken: retried.leaseToken)
        #expect(try await store.retryJob(id: claimed.id))
        #expect(try await store.job(id: claimed.id)?.retries == 2)
        #expect(try await store.counts().jobs == ["queued": 1])
    }

    /// Two places the backends had drifted apart: a parked job (its lease expired on every attempt) and a finished
    /// watch keep no lease owner on SQLite as on PostgreSQL, and `watching()` answers in the order the jobs were made
    /// on both (PostgreSQL sorted by created_at, which ties within one event's batch).
    @Test(arguments: StoreBackend.all)
    func parkedJobsHoldNoLeaseAndWatchedJobsComeInOrder(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-drift", at: clock.now)
        let made = (0..<6).map { Self.job("w\($0)", event: e.id, maxAttempts: 1) }
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: made)
        // Five become watching, in the order they were claimed; the sixth is claimed and its worker dies.
        var claimed: [String] = []
        for _ in 0..<5 {
            let j = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]))
            try await store.finishAttempt(id: j.id, state: .watching, error: nil, result: #"{"run_id":"r"}"#, retryAt: nil,
                                          startedAt: clock.now, now: clock.now, callbacks: [], leaseToken: j.leaseToken)
            claimed.append(j.id)
        }
        let dying = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]))
        #expect(try await store.job(id: dying.id)?.leaseOwner != nil)
        let order = made.map(\.id).filter { claimed.contains($0) }
        #expect(try await store.watching(now: clock.now, lease: 15).map(\.id) == order, "in the order they were made")
        clock.advance(120)
        #expect(try await store.releaseExpiredLeases(now: clock.now) == 1)
        let parked = try #require(try await store.job(id: dying.id))
        #expect(parked.state == .dead && parked.leaseOwner == nil, "parked with no owner: \(String(describing: parked.leaseOwner))")
        // A finished watch leaves no owner either.
        try await store.finishWatch(id: claimed[0], state: .succeeded, error: nil, result: #"{"run_id":"r","status":"Completed"}"#, callbacks: [])
        #expect(try await store.job(id: claimed[0])?.leaseOwner == nil)

        // Parked is a column, not a prefix of the error: what the watcher parks counts too, a retry clears it.
        #expect(parked.parked && parked.lastError?.hasPrefix(Parked.prefix) == true)
        try await store.parkWatch(id: claimed[1], reason: Parked.reason("its run could not be read"))
        let watchParked = try #require(try await store.job(id: claimed[1]))
        #expect(watchParked.state == .dead && watchParked.parked && watchParked.leaseOwner == nil)
        #expect(try await store.counts().parked["job"] == 2)
        #expect(try await store.retryJob(id: dying.id))
        #expect(try await store.job(id: dying.id)?.parked == false)
        #expect(try await store.counts().parked["job"] == 1)
    }

    /// `jobs cancel`: a queued job fails at once with the reason; a watching one is marked for the watcher, which
    /// cancels its run; an ended one and an unknown id say so.
    @Test(arguments: StoreBackend.all)
    func anOperatorCancelsQueuedAndWatchingJobs(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-c", at: clock.now)
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: [Self.job("k1", event: e.id), Self.job("k2", event: e.id)])
        let watched = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]))
        try await store.finishAttempt(id: watched.id, state: .watching, error: nil, result: #"{"run_id":"r"}"#, retryAt: nil,
                                      startedAt: clock.now, now: clock.now, callbacks: [], leaseToken: watched.leaseToken)
        let queued = try #require(try await store.jobs(limit: nil, state: .queued).first)
        #expect(try await store.cancelJob(id: queued.id, reason: "stop it") == .canceled)
        let failed = try await store.job(id: queued.id)
        #expect(failed?.state == .failed && failed?.lastError == "stop it")
        #expect(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]) == nil, "a canceled job never runs")
        #expect(try await store.cancelJob(id: watched.id, reason: "stop it") == .requested)
        #expect(try await store.cancelRequested().map(\.id) == [watched.id])
        #expect(try await store.job(id: watched.id)?.lastError == "stop it")
        #expect(try await store.cancelJob(id: queued.id, reason: "again") == .ended(.failed))
        #expect(try await store.cancelJob(id: "job_nosuch", reason: "x") == .notFound)
    }

    @Test(arguments: StoreBackend.all)
    func anAttemptCutShortByShutdownIsGivenBack(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: [Self.job("k", event: e.id, maxAttempts: 1)])
        let job = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]))
        try await store.finishAttempt(id: job.id, state: .queued, error: "interrupted by shutdown", result: nil, retryAt: clock.now,
                                      startedAt: clock.now, now: clock.now, callbacks: [], countAttempt: false, leaseToken: nil)
        let again = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]))
        #expect(again.attempts == 1 && again.attempts <= again.maxAttempts)
    }

    @Test(arguments: StoreBackend.all)
    func aRuleAtItsConcurrencyIsSkipped(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: [Self.job("a1", event: e.id, rule: "a"), Self.job("a2", event: e.id, rule: "a"),
                                                                       Self.job("b1", event: e.id, rule: "b")])
        let first = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: ["a": 1], actions: ["start_run"]))
        #expect(first.rule == "a")
        let second = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: ["a": 1], actions: ["start_run"]))
        #expect(second.rule == "b", "rule a has one running already")
        #expect(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: ["a": 1], actions: ["start_run"]) == nil)
    }

    @Test(arguments: StoreBackend.all)
    func aNewerJobInTheSameScopeSupersedesOlderOnes(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e1 = Self.event("d-1", at: clock.now), e2 = Self.event("d-2", at: clock.now), e3 = Self.event("d-3", at: clock.now)
        // Job 1 is watching its run, job 2 is queued; job 3 for the same branch supersedes both.
        _ = try await store.append(e1, plan: Self.planned(e1.id), jobs: [Self.job("k1", event: e1.id, scope: "r@main")])
        let watching = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]))
        try await store.finishAttempt(id: watching.id, state: .watching, error: nil, result: #"{"run_id":"r1"}"#, retryAt: nil,
                                      startedAt: clock.now, now: clock.now)
        _ = try await store.append(e2, plan: Self.planned(e2.id), jobs: [Self.job("k2", event: e2.id, scope: "r@main")])
        let queued = try #require(try await store.jobs(JobQuery(eventID: e2.id)).first)
        let newest = Self.job("k3", event: e3.id, scope: "r@main")
        _ = try await store.append(e3, plan: Self.planned(e3.id), jobs: [newest, Self.job("other", event: e3.id, scope: "r@dev")])
        let old = try #require(try await store.job(id: queued.id))
        #expect(old.state == .failed && old.lastError == "superseded by job \(newest.id)")
        #expect(try await store.cancelRequested().map(\.id) == [watching.id])
        #expect(try await store.watching(now: clock.now, lease: 30).map(\.id) == [watching.id])
        #expect(try await store.job(id: newest.id)?.state == .queued)
        #expect(try await store.jobs(JobQuery(state: .queued)).count == 2, "another branch is not superseded")
    }

    @Test(arguments: StoreBackend.all)
    func finishingAWatchQueuesItsCallbacksOnce(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: [Self.job("k", event: e.id)])
        let job = try #require(try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["start_run"]))
        let pending = NewCallback(jobID: job.id, eventID: e.id, rule: "train", targetIndex: 0, phase: .pending, kind: "github_status",
                                  url: "http://127.0.0.1:1/status", body: #"{"state":"pending"}"#)
        try await store.finishAttempt(id: job.id, state: .watching, error: nil, result: #"{"run_id":"r1"}"#, retryAt: nil,
                                      startedAt: clock.now, now: clock.now, callbacks: [pending])
        let final = NewCallback(jobID: job.id, eventID: e.id, rule: "train", targetIndex: 0, phase: .final, kind: "github_status",
                                url: "http://127.0.0.1:1/status", body: #"{"state":"success"}"#)
        #expect(try await store.finishWatch(id: job.id, state: .succeeded, error: nil, result: #"{"status":"Completed"}"#, callbacks: [final]) == 0)
        // A second finish (another watcher pass) changes nothing and queues nothing.
        try await store.finishWatch(id: job.id, state: .failed, error: "late", result: "{}")
        let done = try #require(try await store.job(id: job.id))
        #expect(done.state == .succeeded && done.result == #"{"status":"Completed"}"#)
        let callbacks = try await store.callbacks(CallbackQuery(jobID: job.id))
        #expect(Set(callbacks.map(\.phase)) == [.pending, .final] && callbacks.count == 2, "the pending status and the final one, one each")
        #expect(callbacks.allSatisfy { $0.id.hasPrefix("msg_") })
    }

    @Test(arguments: StoreBackend.all)
    func aLostLeaseFencesTheWorkerThatHadIt(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: [Self.job("k", event: e.id, action: "score")])
        let first = try #require(try await store.claimJob(now: clock.now, lease: 30, ruleLimits: [:], actions: ["score"]))
        let token = try #require(first.leaseToken)
        // Renewing moves the expiry: at +40 s the job is still held.
        #expect(try await store.renewLease(id: first.id, leaseToken: token, until: clock.now.addingTimeInterval(60)))
        #expect(try await store.releaseExpiredLeases(now: clock.now.addingTimeInterval(40)) == 0)
        // Unrenewed, it expires and another worker claims it with a new token.
        #expect(try await store.releaseExpiredLeases(now: clock.now.addingTimeInterval(61)) == 1)
        let second = try #require(try await store.claimJob(now: clock.now.addingTimeInterval(61), lease: 30, ruleLimits: [:], actions: ["score"]))
        #expect(second.id == first.id && second.leaseToken != token && second.attempts == 2)
        // The first worker can neither renew nor end the attempt.
        #expect(try await store.renewLease(id: first.id, leaseToken: token, until: clock.now.addingTimeInterval(120)) == false)
        await #expect { try await store.finishAttempt(id: first.id, state: .succeeded, error: nil, result: "{}", retryAt: nil, startedAt: clock.now,
                                                     now: clock.now, callbacks: [Self.callback(jobID: first.id, eventID: e.id)],
                                                     leaseToken: token) } throws: { ($0 as? StoreError)?.code == .leaseLost }
        #expect(try await store.job(id: first.id)?.state == .running)
        #expect(try await store.callbacks(CallbackQuery()).isEmpty, "its callbacks are not queued")
        #expect(try await store.attempts(jobID: first.id).isEmpty)
        // The owner's outcome is written.
        try await store.finishAttempt(id: second.id, state: .succeeded, error: nil, result: "{}", retryAt: nil, startedAt: clock.now,
                                      now: clock.now, callbacks: [], leaseToken: second.leaseToken)
        #expect(try await store.job(id: first.id)?.state == .succeeded)
    }

    @Test(arguments: StoreBackend.all)
    func claimRespectsMaxAttempts(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: [Self.job("k", event: e.id, action: "score", maxAttempts: 1)])
        let job = try #require(try await store.claimJob(now: clock.now, lease: 30, ruleLimits: [:], actions: ["score"]))
        // An interrupted attempt (shutdown) gives it back; one that counted uses it up.
        try await store.finishAttempt(id: job.id, state: .queued, error: "shutdown", result: nil, retryAt: clock.now, startedAt: clock.now,
                                      now: clock.now, callbacks: [], countAttempt: false, leaseToken: job.leaseToken)
        let again = try #require(try await store.claimJob(now: clock.now, lease: 30, ruleLimits: [:], actions: ["score"]))
        try await store.finishAttempt(id: again.id, state: .queued, error: "x", result: nil, retryAt: clock.now, startedAt: clock.now,
                                      now: clock.now, callbacks: [], leaseToken: again.leaseToken)
        #expect(try await store.claimJob(now: clock.now, lease: 30, ruleLimits: [:], actions: ["score"]) == nil)
    }

    static func callback(jobID: String, eventID: String) -> NewCallback {
        NewCallback(jobID: jobID, eventID: eventID, rule: "train", targetIndex: 0, kind: "url", url: "http://127.0.0.1:1/cb", body: "{}")
    }

    // MARK: Two replicas on one store

    @Test(arguments: StoreBackend.all)
    func twoReplicasStoreOneEventPerDelivery(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (a, b, close) = try await backend.openTwo(clock)
        defer { close() }
        // The same delivery posted to both replicas at once, ten times over.
        let outcomes = try await withThrowingTaskGroup(of: AppendOutcome.self) { group in
            for i in 0..<20 {
                let store = i % 2 == 0 ? a : b
                group.addTask { try await store.append(Self.event("same", at: clock.now)) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { if case .stored = $0 { true } else { false } }.count == 1)
        #expect(Set(outcomes.map(\.id)).count == 1, "every duplicate names the stored event")
        #expect(try await a.events(EventQuery()).count == 1)
        #expect(try await b.events(EventQuery()).count == 1)
    }

    @Test(arguments: StoreBackend.all)
    func twoReplicasClaimEachJobOnceAndFollowEachRunOnce(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (a, b, close) = try await backend.openTwo(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        _ = try await a.append(e, plan: Self.planned(e.id), jobs: (0..<10).map { Self.job("k\($0)", event: e.id, action: "score") })
        let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
            for store in [a, b, a, b] {
                group.addTask {
                    var ids: [String] = []
                    while let j = try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["score"]) { ids.append(j.id) }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(claimed.count == 10 && Set(claimed).count == 10, "each job claimed by one worker")
        // Their runs started: each is followed by one replica; the other takes over when that one stops renewing.
        for id in claimed {
            try await a.finishAttempt(id: id, state: .watching, error: nil, result: #"{"run_id":"r"}"#, retryAt: nil, startedAt: clock.now, now: clock.now)
        }
        let byA = try await a.watching(now: clock.now, lease: 30)
        let byB = try await b.watching(now: clock.now, lease: 30)
        #expect(byA.count == 10 && byB.isEmpty)
        #expect(try await a.watching(now: clock.now.addingTimeInterval(20), lease: 30).count == 10, "renewed by its follower")
        #expect(try await b.watching(now: clock.now.addingTimeInterval(40), lease: 30).isEmpty, "still held: renewed at +20 s")
        #expect(try await b.watching(now: clock.now.addingTimeInterval(51), lease: 30).count == 10, "taken over after the hold ran out")
        #expect(try await a.watching(now: clock.now.addingTimeInterval(52), lease: 30).isEmpty)
    }

    // MARK: Callback outbox

    @Test(arguments: StoreBackend.all)
    func callbacksRetryThenDeadLetterAndReplay(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let c = NewCallback(jobID: "job_1", eventID: "evt_1", rule: "train", targetIndex: 0, kind: "url", url: "http://127.0.0.1:1/cb",
                            credential: .file("/run/secrets/cb", create: false), body: #"{"ok":true}"#)
        #expect(try await store.enqueueCallback(c))
        // Once per job, target and phase: a second enqueue is ignored.
        var again = c
        again.id = EventID.make("msg")
        #expect(try await store.enqueueCallback(again))
        #expect(try await store.callbacks(CallbackQuery()).map(\.id) == [c.id])
        #expect(try await store.dueCallbacks(now: clock.now, limit: 10).map(\.id) == [c.id])
        try await store.recordDelivery(id: c.id, state: .pending, status: 503, error: "the receiver answered 503", retryAt: clock.now.addingTimeInterval(5))
        #expect(try await store.dueCallbacks(now: clock.now, limit: 10).isEmpty)
        let due = try await store.dueCallbacks(now: clock.now.addingTimeInterval(5), limit: 10)
        #expect(due.map(\.attempts) == [1] && due.first?.lastStatus == 503)
        try await store.recordDelivery(id: c.id, state: .dead, status: 503, error: "gave up", retryAt: nil)
        #expect(try await store.dueCallbacks(now: clock.now.addingTimeInterval(3600), limit: 10).isEmpty)
        #expect(try await store.callback(id: c.id)?.state == .dead)
        #expect(try await store.counts().callbacks == ["dead": 1])
        #expect(try await store.replayCallback(id: c.id))
        let replayed = try #require(try await store.callback(id: c.id))
        #expect(replayed.state == .pending && replayed.attempts == 0)
        #expect(replayed.credential == .file("/run/secrets/cb", create: false), "where its secret comes from, never the secret")
        #expect(try await store.replayCallback(id: "msg_none") == false)
    }

    @Test(arguments: StoreBackend.all)
    func aDueCallbackIsHandedToOneDelivererAtATime(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let cbs = (0..<6).map { NewCallback(jobID: "job_\($0)", eventID: "evt_1", rule: "train", targetIndex: 0, kind: "url",
                                            url: "http://127.0.0.1:1/cb", body: "{}") }
        for c in cbs { try await store.enqueueCallback(c) }
        // Two deliverers (two replicas) poll at once: each callback goes to one of them.
        async let a = store.dueCallbacks(now: clock.now, limit: 4)
        async let b = store.dueCallbacks(now: clock.now, limit: 4)
        let (first, second) = try await (a, b)
        #expect(first.count + second.count == 6)
        #expect(Set(first.map(\.id)).isDisjoint(with: second.map(\.id)))
        #expect(try await store.dueCallbacks(now: clock.now, limit: 10).isEmpty, "claimed, not yet recorded")
        // A deliverer that died without recording: its claim runs out and another takes the callback.
        let again = try await store.dueCallbacks(now: clock.now.addingTimeInterval(CallbackRecord.claimSeconds + 1), limit: 10)
        #expect(again.count == 6)
    }

    @Test(arguments: StoreBackend.all)
    func theSlackCapHoldsUnderConcurrentWorkers(backend: StoreBackend) async throws {
        let clock = ManualClock()
        let (store, close) = try await backend.open(clock)
        defer { close() }
        let e = Self.event("d-1", at: clock.now)
        let jobs = (0..<8).map { Self.job("k\($0)", event: e.id, action: "score") }
        _ = try await store.append(e, plan: Self.planned(e.id), jobs: jobs)
        var claimed: [JobRecord] = []
        while let j = try await store.claimJob(now: clock.now, lease: 60, ruleLimits: [:], actions: ["score"]) { claimed.append(j) }
        #expect(claimed.count == 8)
        // Eight workers finish at once, each with a response to the same response_url, which takes 5.
        let refused = try await withThrowingTaskGroup(of: Int.self) { group in
            for j in claimed {
                group.addTask {
                    let cb = NewCallback(jobID: j.id, eventID: e.id, rule: "train", targetIndex: 0, kind: "slack",
                                         url: "https://hooks.slack.com/commands/T/1/x", body: "{}", maxPerURL: 5)
                    return try await store.finishAttempt(id: j.id, state: .succeeded, error: nil, result: "{}", retryAt: nil,
                                                         startedAt: clock.now, now: clock.now, callbacks: [cb])
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(refused == 3)
        #expect(try await store.callbacks(CallbackQuery(eventID: e.id)).count == 5)
        #expect(try await store.jobs(JobQuery(state: .succeeded)).count == 8, "a refused response does not fail its job")
    }
}
