import Foundation
import MLHookCore
import MLHookServer
import Store
import TestSupport
import Testing

/// One bad record cannot stall the work behind it: it is isolated, tried a bounded number of times, then parked
/// with its reason (shown as the event's explanation or the job's error, counted by `mlhook_parked_records`).
@Suite struct PoisonRecordTests {
    /// Stores a `ping` event whose body carries `marker`.
    func store(_ h: IngressHarness, _ marker: String, jobs: (String) -> [NewJob] = { _ in [] }) async throws -> String {
        let id = EventID.make(at: IngressHarness.now)
        let body = Array("{\"zen\":\"\(marker)\",\"hook_id\":1}".utf8)
        let event = InboundEvent(id: id, source: "github", kind: "ping", deliveryID: "d-\(marker)", headers: [:], body: body,
                                 contentType: "application/json", receivedAt: IngressHarness.now)
        _ = try await h.store.append(event, plan: nil, jobs: jobs(id))
        return id
    }

    /// Damages the stored body that carries `marker`, as a bad sector or a torn copy would.
    func damage(_ h: IngressHarness, _ marker: String) throws {
        let segment = h.dir.file("mlhook.db.bodies") + "/00000001.body"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        let needle = Array(marker.utf8)
        let at = try #require(bytes.indices.first { bytes[$0...].starts(with: needle) })
        bytes[at] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
    }

    @Test func anUnreadableEventIsParkedAndTheOthersArePlanned() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let a = try await store(h, "poison-A"), b = try await store(h, "poison-B"), c = try await store(h, "poison-C")
        try damage(h, "poison-B")
        let planner = EventPlanner(store: h.store, live: h.runtime.live, logger: h.runtime.logger)
        #expect(try await planner.planPending() == 2)
        #expect(try await planner.planPending() == 0, "nothing is left to plan: the bad one does not come back")
        for id in [a, c] { #expect(try await h.store.event(id: id)?.summary.state == .ignored) }
        let parked = try #require(try await h.store.events(EventQuery(limit: 10)).first { $0.id == b })
        #expect(parked.state == .failed)
        let why = try await h.store.explanations(ids: [b])[b] ?? ""
        #expect(why.hasPrefix(Parked.prefix) && why.contains("checksum"), "\(why)")
        #expect(try await h.store.counts().parked["event"] == 1)
    }

    @Test func aJobWhoseOutcomeIsNeverRecordedIsParkedAfterItsAttempts() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        _ = try await store(h, "lease") { id in
            [NewJob(idempotencyKey: "r#0@lease", eventID: id, rule: "r", actionIndex: 0, action: "scale_compute", parameters: "{}", maxAttempts: 3)]
        }
        var now = IngressHarness.now
        var claims = 0
        // Each worker dies holding the job: its lease runs out every time.
        while let _ = try await h.store.claimJob(now: now, lease: 30, ruleLimits: [:], actions: ["scale_compute"]) {
            claims += 1
            now += 31
            try await h.store.releaseExpiredLeases(now: now)
            #expect(claims <= 3, "claimed again after its last attempt")
            if claims > 3 { break }
        }
        #expect(claims == 3)
        let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
        #expect(job.state == .dead)
        #expect(job.lastError?.hasPrefix(Parked.prefix) == true, "\(job.lastError ?? "")")
        #expect(try await h.store.counts().parked["job"] == 1)
    }

    @Test func aWatchedJobThatCannotBeFinishedDoesNotHoldBackTheOthers() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let fake = FakeAzureMLClient()
        for marker in ["watch-good", "watch-bad"] {
            _ = try await store(h, marker) { id in
                [NewJob(idempotencyKey: "r#0@\(marker)", eventID: id, rule: "r", actionIndex: 0, action: "start_run", parameters: "{}", maxAttempts: 3)]
            }
            let job = try #require(try await h.store.claimJob(now: IngressHarness.now, lease: 300, ruleLimits: [:], actions: ["start_run"]))
            try await h.store.finishAttempt(id: job.id, state: .watching, error: nil,
                                            result: "{\"experiment\":\"e\",\"run_id\":\"run-\(marker)\"}", retryAt: nil,
                                            startedAt: IngressHarness.now, now: IngressHarness.now)
            fake.setRun("run-\(marker)", status: "Completed")
        }
        // The bad job's event cannot be read, so its outcome (and callbacks) cannot be made.
        try damage(h, "watch-bad")
        let runner = JobRunner(store: h.store, live: h.runtime.live, client: { fake }, logger: h.runtime.logger, now: { IngressHarness.now })
        #expect(try await runner.watchOne() == 1, "the good job finished in the same pass")
        for _ in 0..<4 { _ = try await runner.watchOne() }
        let jobs = try await h.store.jobs(limit: nil, state: nil)
        let good = try #require(jobs.first { $0.result?.contains("run-watch-good") == true })
        let bad = try #require(jobs.first { $0.result?.contains("run-watch-bad") == true })
        #expect(good.state == .succeeded)
        #expect(bad.state == .dead && bad.lastError?.hasPrefix(Parked.prefix) == true, "\(bad.state) \(bad.lastError ?? "")")
        #expect(try await h.store.jobs(limit: nil, state: .watching).isEmpty, "nothing is watched for ever")
    }
}
