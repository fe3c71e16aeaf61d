import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MLHookCore
import MLHookServer
import NIOCore
import Signing
import Store
import Synchronization
import TestSupport
import Testing

/// Stored events are planned; a non-match keeps its explanation; schedules fire once; reloads are safe.
@Suite struct PlanningTests {
    static let config = """
        sources:
          - { name: github, type: github, secrets: [ { env: GH } ] }
        rules:
          - name: retrain-on-main
            when: { source: github, kind: push, branches: [main] }
            actions:
              - start_run: { experiment: "{{ repository.name | slug }}", script: train.py, compute: cpu-cluster, arguments: ["{{ after | short }}"] }
          - name: nightly
            when: { schedule: "0 3 * * *", timezone: Europe/Berlin }
            actions:
              - start_run: { experiment: nightly, repository: "https://example.com/ml.git", ref: main, script: train.py, compute: cpu-cluster, arguments: ["{{ schedule.tick }}"] }
        """

    func post(_ h: IngressHarness, _ client: some TestClientProtocol, fixture: String, delivery: String) async throws -> String {
        try await post(h, client, body: try Fixtures.webhook("github", fixture), delivery: delivery)
    }

    func post(_ h: IngressHarness, _ client: some TestClientProtocol, body: [UInt8], delivery: String,
              status: HTTPResponse.Status = .accepted) async throws -> String {
        var id = ""
        try await client.execute(uri: "/hooks/github", method: .post, headers: HTTPFields(
            try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
                + [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", delivery), ("Content-Type", "application/json")]),
            body: ByteBuffer(bytes: body)) { res in
            #expect(res.status == status)
            id = object(res)["event_id"] as? String ?? ""
        }
        return id
    }

    @Test func eventsArePlannedOrIgnoredWithTheirExplanation() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let planner = EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger())
        try await h.app.test(.router) { client in
            let main = try await post(h, client, fixture: "push.new-branch-1-commit.octokit.json", delivery: "p1")  // refs/heads/master
            let tag = try await post(h, client, fixture: "push.tag-created.go-scm.json", delivery: "p2")
            // Ingress plans what it stores, in the same transaction: nothing is left for the planner.
            #expect(try await planner.planPending() == 0)
            let ignored = try #require(try await h.store.event(id: main))
            #expect(ignored.summary.state == .ignored)
            #expect(ignored.explanation?.contains("✗ retrain-on-main: branch: \"master\" is not in [main]") == true)
            #expect(ignored.explanation?.contains("✗ nightly: schedule: this is a push event") == true)
            let tagEvent = try #require(try await h.store.event(id: tag))
            #expect(tagEvent.summary.state == .ignored && tagEvent.explanation?.contains("kind: \"tag\" is not in [push]") == true)

            // A push to main: by the time the 202 is sent, the event is planned and its job is queued.
            let push = try IngressHarness.pushEvent(branch: "main")
            let planned = try await post(h, client, body: push.body, delivery: "p3")
            #expect(try await h.store.event(id: planned)?.summary.state == .planned)
            let jobs = try await h.store.jobs(JobQuery(eventID: planned))
            #expect(jobs.map(\.action) == ["start_run"] && jobs.map(\.state) == [.queued] && jobs.map(\.deliveryID) == ["p3"])
            // A redelivery is a duplicate: no second job, even though ingress planned it again.
            _ = try await post(h, client, body: push.body, delivery: "p3", status: .ok)
            #expect(try await h.store.jobs(JobQuery()).count == 1)
            #expect(try await planner.planPending() == 0, "each event is planned once")
        }
        // An event stored without a plan (a schedule tick, or one stored before an upgrade) is the planner's:
        // a push to main is planned with its rendered action.
        var main = try IngressHarness.pushEvent(branch: "main")
        main.id = EventID.make()
        _ = try await h.store.append(main)
        _ = try await planner.planPending()
        let planned = try #require(try await h.store.event(id: main.id))
        #expect(planned.summary.state == .planned)
        let actions = try JSONDecoder().decode([PlannedAction].self, from: Data((planned.plan ?? "").utf8))
        #expect(actions.map(\.type) == [.startRun] && actions[0].parameters["experiment"] == .string("hello-world"))
    }

    @Test func scheduleTicksFireOnceAcrossRestartsAndCatchUp() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let start = ISO8601DateFormatter().date(from: "2026-11-22T01:59:00Z")!  // 02:59 in Berlin
        let clock = ManualClock(start)
        let scheduler = Scheduler(store: h.store, live: h.runtime.live, clock: clock, logger: h.logs.logger())
        let task = Task { try await scheduler.run() }
        // Move past 03:00 Berlin (02:00Z): exactly one tick is stored.
        clock.advance(to: ISO8601DateFormatter().date(from: "2026-11-22T02:00:30Z")!)
        #expect(try await eventually { try await h.store.list(limit: nil, source: "schedule").count == 1 })
        task.cancel()
        _ = await task.result

        // A restart 2 hours later: the catch-up refires the same tick, which is deduplicated.
        let later = Scheduler(store: h.store, live: h.runtime.live, clock: ManualClock(ISO8601DateFormatter().date(from: "2026-11-22T04:00:00Z")!),
                              logger: h.logs.logger())
        try await later.catchUp(at: ISO8601DateFormatter().date(from: "2026-11-22T04:00:00Z")!)
        let ticks = try await h.store.list(limit: nil, source: "schedule")
        #expect(ticks.count == 1 && ticks[0].deliveryID == "schedule:nightly:2026-11-22T02:00:00Z")

        // Down over the next night's tick; the start within the window (1 h) fires it once.
        try await later.catchUp(at: ISO8601DateFormatter().date(from: "2026-11-23T02:30:00Z")!)
        try await later.catchUp(at: ISO8601DateFormatter().date(from: "2026-11-23T02:31:00Z")!)
        #expect(try await h.store.list(limit: nil, source: "schedule").count == 2)
        // Too late for the window: nothing.
        try await later.catchUp(at: ISO8601DateFormatter().date(from: "2026-11-24T05:00:00Z")!)
        #expect(try await h.store.list(limit: nil, source: "schedule").count == 2)

        // Ticks are planned with the schedule's values.
        let planner = EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger())
        _ = try await planner.planPending()
        let tick = try #require(try await h.store.event(id: ticks[0].id))
        #expect(tick.summary.state == .planned)
        #expect(tick.plan?.contains("2026-11-22T02:00:00Z") == true)
    }

    @Test func anInvalidReloadKeepsTheRunningConfigurationAndLogsLines() throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let path = h.dir.file("mlhook.yaml")
        try Self.config.write(toFile: path, atomically: true, encoding: .utf8)
        let reloader = ConfigReloader(path: path, live: h.runtime.live, logger: h.logs.logger(), environment: h.secrets)
        let before = h.runtime.live.snapshot.generation
        try (Self.config + "\n  - name: broken\n    when: { kind: pushh }\n    actions: []\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(reloader.reload(reason: "test") == false)
        #expect(h.runtime.live.snapshot.generation == before)
        #expect(h.runtime.live.snapshot.config.rules.count == 2)
        let errors = h.logs.lines.filter { $0.level == .error }.map(\.message)
        #expect(errors.contains { $0.contains("mlhook.yaml:13: rules[2].when.kind: \"pushh\" is not a kind") }, "\(errors)")
        // A valid change is installed.
        try Self.config.replacingOccurrences(of: "branches: [main]", with: "branches: [main, dev]").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(reloader.reload(reason: "test"))
        #expect(h.runtime.live.snapshot.generation == before + 1)
        #expect(h.runtime.live.snapshot.config.rules[0].when[0].branches?.count == 2)
    }

    @Test func aChangedFileIsReloadedWithoutASignal() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let path = h.dir.file("mlhook.yaml")
        try Self.config.write(toFile: path, atomically: true, encoding: .utf8)
        let reloader = ConfigReloader(path: path, live: h.runtime.live, logger: h.logs.logger(), environment: h.secrets,
                                      pollInterval: .milliseconds(50))
        let task = Task { try await reloader.run() }
        defer { task.cancel() }
        let before = h.runtime.live.snapshot.generation
        // Modification times have one-second granularity on some filesystems: make the change visible.
        try await Task.sleep(for: .milliseconds(1100))
        try Self.config.replacingOccurrences(of: "branches: [main]", with: "branches: [main, \"release/*\"]")
            .write(toFile: path, atomically: true, encoding: .utf8)
        // Generous: on 2 cores under the whole suite (replicas, PostgreSQL, chaos) a 50 ms poll can wait seconds for a thread.
        #expect(try await eventually(timeout: .seconds(45)) { h.runtime.live.snapshot.generation == before + 1 })
        #expect(h.runtime.live.snapshot.config.rules[0].when[0].branches?.map(\.pattern) == ["main", "release/*"])
        #expect(h.logs.lines.contains { $0.message.contains("config reloaded (file changed)") })
    }

    @Test func aKubernetesStyleSymlinkSwapIsNoticed() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        // A ConfigMap volume: mlhook.yaml -> ..data/mlhook.yaml, ..data -> a timestamped folder swapped on update.
        let fm = FileManager.default
        try fm.createDirectory(atPath: h.dir.file("v1"), withIntermediateDirectories: true)
        try Self.config.write(toFile: h.dir.file("v1/mlhook.yaml"), atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(atPath: h.dir.file("..data"), withDestinationPath: "v1")
        try fm.createSymbolicLink(atPath: h.dir.file("mlhook.yaml"), withDestinationPath: "..data/mlhook.yaml")
        let reloader = ConfigReloader(path: h.dir.file("mlhook.yaml"), live: h.runtime.live, logger: h.logs.logger(), environment: h.secrets,
                                      pollInterval: .milliseconds(50))
        let task = Task { try await reloader.run() }
        defer { task.cancel() }
        let before = h.runtime.live.snapshot.generation
        try await Task.sleep(for: .milliseconds(200))
        try fm.createDirectory(atPath: h.dir.file("v2"), withIntermediateDirectories: true)
        try Self.config.replacingOccurrences(of: "branches: [main]", with: "branches: [main, dev]")
            .write(toFile: h.dir.file("v2/mlhook.yaml"), atomically: true, encoding: .utf8)
        try fm.createSymbolicLink(atPath: h.dir.file("..data_tmp"), withDestinationPath: "v2")
        #expect(rename(h.dir.file("..data_tmp"), h.dir.file("..data")) == 0)
        #expect(try await eventually(timeout: .seconds(45)) { h.runtime.live.snapshot.generation == before + 1 })
        #expect(h.runtime.live.snapshot.config.rules[0].when[0].branches?.count == 2)
    }

    @Test func sighupReloadsARunningServer() async throws {
        let dir = try TemporaryDirectory("mlhook-reload")
        defer { dir.remove() }
        let path = dir.file("mlhook.yaml")
        let base = "server: { listen: \"127.0.0.1:0\" }\nstore: { path: \"\(dir.file("m.db"))\" }\nsources:\n  - { name: github, type: github, secrets: [ { env: A } ] }\n"
        try base.write(toFile: path, atomically: true, encoding: .utf8)
        let server = try await ServerProcess(arguments: ["serve", "--config", path], environment: ["A": "a", "B": "b"], directory: dir.path)
        let body = Array(#"{"id":"g1"}"#.utf8)
        func status(_ source: String) async throws -> Int {
            let h = "POST /hooks/\(source) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Gitea-Signature: \(try WebhookSigner.gitea(secret: WebhookSecret("b"), body: body)[0].value)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            let r = RawHTTP.exchange(port: server.port, Array(h.utf8) + body, closeAfterWrite: false)
            return Int(r.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        #expect(try await status("gitea") == 404)
        try (base + "  - { name: gitea, type: gitea, secrets: [ { env: B } ] }\n").write(toFile: path, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        #expect(try await eventually { server.log.contains("config reloaded") })
        #expect(try await status("gitea") == 202)
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
    }
}

/// A scheduler clock moved by the test.
final class ManualClock: SchedulerClock, Sendable {
    private let current: Mutex<Date>
    init(_ start: Date) { current = Mutex(start) }
    func now() -> Date { current.withLock { $0 } }
    func advance(to date: Date) { current.withLock { $0 = date } }
    func sleep(until date: Date) async throws {
        while now() < date {
            try Task.checkCancellation()
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

extension IngressHarness {
    /// A GitHub push event as ingress would store it.
    /// GitHub's documented push to `branch`, naming `after` as its head commit when given.
    static func pushEvent(branch: String, after: String? = nil) throws -> InboundEvent {
        var body = String(decoding: try Fixtures.webhook("github", "push.new-branch-1-commit.octokit.json"), as: UTF8.self)
        body = body.replacingOccurrences(of: "\"refs/heads/master\"", with: "\"refs/heads/\(branch)\"")
        if let after {
            body = body.replacingOccurrences(of: "\"after\": \"6113728f27ae82c7b1a177c8d03f9e96e0adf246\"", with: "\"after\": \"\(after)\"")
        }
        return InboundEvent(id: EventID.make(), source: "github", kind: "push", deliveryID: UUID().uuidString, headers: [:],
                            body: Array(body.utf8), contentType: "application/json", receivedAt: Date())
    }
}
