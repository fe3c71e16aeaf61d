import AMLLocal
import AzureML
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
import MLHookServer
import Store
import TestSupport
import Testing

/// Workers claim jobs with a lease, perform them against Azure ML (here aml-local), record every attempt,
/// retry what is retryable and fail what is not.
@Suite struct JobRunnerTests {
    static let config = """
        sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
        rules:
          - { name: ops, when: { kind: push }, actions: [ { scale_compute: { name: cpu-cluster, max_nodes: 2 } } ] }
        """

    func job(_ key: String, _ action: String, _ params: String, maxAttempts: Int = 3) -> NewJob {
        NewJob(idempotencyKey: key, eventID: "evt_x", rule: "ops", actionIndex: 0, action: action, parameters: params, maxAttempts: maxAttempts)
    }

    func until(_ runner: JobRunner) async throws {
        while try await runner.runOne() {}
    }

    @Test func actionsSucceedOrFailAndEveryAttemptIsRecorded() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let aml = try AMLLocal(settings: { var s = AMLLocalSettings(dataDirectory: h.dir.file("aml")); s.provisioningDelay = 0.05; return s }(),
                               logger: Logger(label: "aml"))
        let app = Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
        try await app.test(.live) { _ in
            let client: @Sendable () async throws -> HTTPAzureMLClient = { HTTPAzureMLClient(settings: .local(aml)) }
            try await h.store.recordPlans([], jobs: [
                job("scale", "scale_compute", #"{"name":"cpu-cluster","max_nodes":3,"min_nodes":0}"#),
                job("gone", "delete_model", #"{"id":"never-registered:1"}"#),
                job("missing", "scale_compute", #"{"name":"no-such-compute","max_nodes":1}"#),
            ])
            let runner = JobRunner(store: h.store, live: h.runtime.live, client: client, logger: h.logs.logger())
            try await until(runner)
            let jobs = Dictionary(uniqueKeysWithValues: try await h.store.jobs(limit: nil, state: nil).map { ($0.idempotencyKey, $0) })
            #expect(jobs["scale"]?.state == .succeeded && jobs["scale"]?.result?.contains("\"maxNodeCount\":3") == true)
            #expect(try await client().compute("cpu-cluster").value(at: "properties.properties.scaleSettings.maxNodeCount")?.int == 3)
            #expect(jobs["gone"]?.state == .succeeded, "deleting an absent model counts as done")
            let missing = try #require(jobs["missing"])
            #expect(missing.state == .failed && missing.attempts == 1 && missing.lastError?.contains("notFound") == true, "a 404 is not retried")
            let attempts = try await h.store.attempts(jobID: missing.id)
            #expect(attempts.count == 1 && attempts[0].outcome == .failed && attempts[0].error != nil)
        }
        aml.shutdown()
    }

    @Test func retryableFailuresAreRetriedUntilDead() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let client: @Sendable () async throws -> HTTPAzureMLClient = {
            var s = AzureMLSettings(credential: .staticToken("t"), subscriptionID: "s", resourceGroup: "g", workspace: "w")
            s.armURL = "http://127.0.0.1:1"  // nobody listens: connection errors, which are retryable
            s.retry.maxAttempts = 1
            s.retry.deadline = 2
            return HTTPAzureMLClient(settings: s)
        }
        try await h.store.recordPlans([], jobs: [job("flaky", "scale_compute", #"{"name":"cpu-cluster","max_nodes":1}"#, maxAttempts: 3)])
        let runner = JobRunner(store: h.store, live: h.runtime.live, client: client, logger: h.logs.logger(), baseBackoff: 0.01, maxBackoff: 0.02)
        for _ in 0..<20 {
            _ = try await runner.runOne()
            if try await h.store.jobs(limit: nil, state: .dead).count == 1 { break }
            try await Task.sleep(for: .milliseconds(30))
        }
        let dead = try #require(try await h.store.jobs(limit: nil, state: .dead).first)
        #expect(dead.attempts == 3)
        let attempts = try await h.store.attempts(jobID: dead.id)
        #expect(attempts.map(\.outcome) == [.queued, .queued, .dead], "each attempt recorded with its outcome")
        #expect(h.logs.lines.contains { $0.message == "job will be retried" && $0.metadata["job_id"] == dead.id })
    }

    @Test func anExpiredLeaseReturnsTheJobToTheQueue() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        try await h.store.recordPlans([], jobs: [job("leased", "scale_compute", #"{"name":"c","max_nodes":1}"#)])
        let now = Date()
        let claimed = try #require(try await h.store.claimJob(now: now, lease: 30, ruleLimits: [:], actions: ["scale_compute"]))
        #expect(try await h.store.claimJob(now: now, lease: 30, ruleLimits: [:], actions: ["scale_compute"]) == nil, "one worker at a time")
        #expect(try await h.store.releaseExpiredLeases(now: now.addingTimeInterval(10)) == 0)
        #expect(try await h.store.releaseExpiredLeases(now: now.addingTimeInterval(31)) == 1, "the worker died: the lease ran out")
        let again = try #require(try await h.store.claimJob(now: now.addingTimeInterval(31), lease: 30, ruleLimits: [:], actions: ["scale_compute"]))
        #expect(again.id == claimed.id && again.attempts == 2)
        // A rule at its concurrency limit is skipped.
        try await h.store.recordPlans([], jobs: [job("second", "scale_compute", #"{"name":"c","max_nodes":1}"#)])
        #expect(try await h.store.claimJob(now: now.addingTimeInterval(32), lease: 30, ruleLimits: ["ops": 1], actions: ["scale_compute"]) == nil)
    }

    @Test func anActionThatOutlivesItsLeaseRenewsItAndRunsOnce() async throws {
        // A compute scale that takes 1.5 s under a 0.4 s lease, with four workers polling: before lease renewal,
        // a second worker claimed the job after 0.4 s and scaled the cluster again in parallel.
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let fake = FakeAzureMLClient()
        fake.delay("scaleCompute", by: .milliseconds(1500))
        try await h.store.recordPlans([], jobs: [job("slow", "scale_compute", #"{"name":"cpu-cluster","max_nodes":4}"#)])
        let runner = JobRunner(store: h.store, live: h.runtime.live, client: { fake }, logger: h.logs.logger(), workers: 4, lease: 0.4)
        let service = Task { try await runner.run() }
        defer { service.cancel() }
        var done: JobRecord?
        for _ in 0..<100 {
            if let j = try await h.store.jobs(limit: nil, state: .succeeded).first { done = j; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let job = try #require(done)
        try await Task.sleep(for: .milliseconds(600))  // time for a second claim's scale to show, had there been one
        #expect(fake.calls("scaleCompute").count == 1, "the action ran once")
        #expect(job.attempts == 1)
        #expect(try await h.store.attempts(jobID: job.id).map(\.outcome) == [.succeeded])
    }

    @Test func aWorkerWhoseLeaseWasLostWritesNothing() async throws {
        // The renewal is what fails here: the lease is taken away under a running action (as when the store was
        // unreachable longer than the lease and another replica claimed the job).
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let fake = FakeAzureMLClient()
        fake.delay("scaleCompute", by: .seconds(2))
        try await h.store.recordPlans([], jobs: [job("taken", "scale_compute", #"{"name":"cpu-cluster","max_nodes":4}"#)])
        let runner = JobRunner(store: h.store, live: h.runtime.live, client: { fake }, logger: h.logs.logger(), workers: 1, lease: 0.3)
        let worker = Task { try await runner.runOne() }
        for _ in 0..<200 where fake.calls("scaleCompute").isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(fake.calls("scaleCompute").count == 1, "the action is running")
        // Another worker takes the job: its lease expired (as the store sees it) and it was claimed again.
        let later = Date().addingTimeInterval(3600)
        #expect(try await h.store.releaseExpiredLeases(now: later) == 1)
        let other = try #require(try await h.store.claimJob(now: later, lease: 3600, ruleLimits: [:], actions: ["scale_compute"]))
        _ = try await worker.value
        let job = try #require(try await h.store.job(id: other.id))
        #expect(job.state == .running && job.attempts == 2, "the first worker wrote no outcome")
        #expect(try await h.store.attempts(jobID: job.id).isEmpty)
        #expect(h.logs.lines.contains { $0.message.contains("lease lost") })
    }
}
