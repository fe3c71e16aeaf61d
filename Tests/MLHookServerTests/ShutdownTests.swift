import AMLLocal
import AsyncHTTPClient
import AzureML
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
import MLHookServer
import NIOCore
import ServiceLifecycle
import Signing
import Store
import Synchronization
import TestSupport
import Testing

/// Graceful shutdown: SIGTERM stops accepting, finishes in-flight requests, gives running actions a bounded
/// time, and leaves the rest durable for the next start.
@Suite struct ShutdownTests {
    @Test func sigtermFinishesTheRequestInFlightAndRefusesNewOnes() async throws {
        let dir = try TemporaryDirectory("mlhook-shutdown")
        defer { dir.remove() }
        try """
            server: { listen: "127.0.0.1:0", shutdown_grace_seconds: 10 }
            store: { path: "\(dir.file("mlhook.db"))" }
            azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["GH": "shutdown-secret"]
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        let body = try Fixtures.webhook("github", "push.new-branch-1-commit.octokit.json")
        var head = "POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n"
        head += "X-GitHub-Delivery: in-flight-1\r\nContent-Length: \(body.count)\r\n"
        for h in try WebhookSigner.github(secret: WebhookSecret("shutdown-secret"), body: body) { head += "\(h.name): \(h.value)\r\n" }
        head += "Connection: close\r\n\r\n"
        let connection = try #require(RawConnection(port: server.port))
        connection.send(Array(head.utf8) + Array(body[..<(body.count / 2)]))
        try await Task.sleep(for: .milliseconds(200))

        server.signal(SIGTERM)
        // It says at once that shutdown started and what it waits for, while the request is still in flight.
        #expect(try await eventually(timeout: .seconds(5)) { server.log.contains("shutdown started") }, "\(server.log.suffix(1500))")
        #expect(server.log.contains("for at most 10 s") && !server.log.contains("mlhook stopped"))
        try await Task.sleep(for: .milliseconds(300))
        #expect(RawConnection(port: server.port) == nil, "no new connections once shutting down")
        // The request that was in flight completes and is stored.
        connection.send(Array(body[(body.count / 2)...]))
        let answer = connection.read(timeout: 10) { $0.contains("\"duplicate\"") }
        #expect(answer.hasPrefix("HTTP/1.1 202"), "\(answer)\n\(server.log.suffix(1500))")
        #expect(try await server.waitForExit(timeout: .seconds(20)) == 0, "SIGTERM exits 0: \(server.log.suffix(1500))")
        #expect(server.log.contains("mlhook stopped"))
        let events = try await runMLHook(["events", "ls", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        #expect(events.output.contains("\tin-flight-1\t"), "\(events.output)")
    }

    @Test func anActionPastTheGracePeriodIsCancelledAndQueuedForTheNextStart() async throws {
        let h = try IngressHarness(config: "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n")
        defer { h.dir.remove() }
        try h.install("""
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: scale
                when: { kind: push }
                actions: [ { scale_compute: { name: cpu-cluster, max_nodes: 3 } } ]
            """)
        _ = try await h.store.append(try IngressHarness.pushEvent(branch: "main"))
        _ = try await EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger()).planPending()

        // An Azure that does not answer until the test is over.
        let released = Mutex(false)
        let router = Router()
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            router.on("**", method: method) { _, _ -> Response in
                for _ in 0..<1200 where !released.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(50)) }
                return Response(status: .serviceUnavailable)
            }
        }
        let stuck = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await stuck.test(.live) { sc in
            var settings = AzureMLSettings(credential: .staticToken("t"), subscriptionID: "s", resourceGroup: "g", workspace: "w")
            settings.armURL = "http://127.0.0.1:\(sc.port!)"
            settings.retry.attemptTimeout = 120
            let client = HTTPAzureMLClient(settings: settings)
            let runner = JobRunner(store: h.store, live: h.runtime.live, client: { client }, logger: h.logs.logger(), workers: 1)
            var groupConfig = ServiceGroupConfiguration(services: [runner], logger: h.logs.logger())
            groupConfig.maximumGracefulShutdownDuration = .seconds(1)
            let group = ServiceGroup(configuration: groupConfig)
            let running = Task { try await group.run() }
            let claimed = try await eventually { try await h.store.jobs(limit: nil, state: .running).count == 1 }
            #expect(claimed)
            let started = ContinuousClock.now
            await group.triggerGracefulShutdown()
            _ = await running.result
            #expect(ContinuousClock.now - started < .seconds(10), "the grace period bounds the shutdown")
            released.withLock { $0 = true }
        }
        let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
        #expect(job.state == .queued && job.attempts == 0, "\(job)")
        #expect(job.lastError?.contains("interrupted by shutdown") == true)
        #expect(try await h.store.attempts(jobID: job.id).count == 1, "the interrupted attempt is on record")
        #expect(h.logs.lines.contains { $0.message.contains("job interrupted by shutdown") })
    }
}
