import AMLLocal
import AzureML
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
import MLHookServer
import NIOCore
import Signing
import Store
import TestSupport
import Testing

/// Slack chat-ops and GitHub commit statuses, end to end in process against aml-local.
@Suite struct ChatOpsAndStatusTests {
    func withAML(_ h: IngressHarness, _ body: @escaping @Sendable (JobRunner, HTTPAzureMLClient) async throws -> Void) async throws {
        let aml = try AMLLocal(settings: { var s = AMLLocalSettings(dataDirectory: h.dir.file("aml")); s.provisioningDelay = 0.05; return s }(),
                               logger: Logger(label: "aml"))
        let app = Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
        try await app.test(.live) { _ in
            let client: @Sendable () async throws -> HTTPAzureMLClient = { HTTPAzureMLClient(settings: .local(aml)) }
            try await body(JobRunner(store: h.store, live: h.runtime.live, client: client, logger: h.logs.logger(),
                                     git: GitSource(cacheDirectory: h.dir.file("git-cache"))), try await client())
        }
        aml.shutdown()
    }

    @Test func slackScaleCommandScalesTheComputeAndAnswersTheResponseURL() async throws {
        let slackReceiver = Receiver(failFirst: 0)
        let rApp = Application(router: slackReceiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await rApp.test(.live) { rc in
            let h = try IngressHarness(config: """
                sources: [ { name: slack, type: slack, secrets: [ { env: SL } ] } ]
                rules:
                  - name: chatops-scale
                    when: { source: slack, command: "/aml scale {compute} {nodes:int}", users: [U2CERLKJA] }
                    actions: [ { scale_compute: { name: "{{ args.compute }}", max_nodes: "{{ args.nodes }}" } } ]
                    callback: [ { slack: {} } ]
                """)
            defer { h.dir.remove() }
            let answer = try await h.postSlackCommand("command=%2Faml&text=scale+cpu-cluster+3&user_id=U2CERLKJA&response_url="
                + FormURLEncoded.escape("http://127.0.0.1:\(rc.port!)/slack/response"))
            #expect(answer.status == .ok && answer.body.contains("/aml scale cpu-cluster 3"))
            try await withAML(h) { runner, c in
                while try await runner.runOne() {}
                #expect(try await c.compute("cpu-cluster").value(at: "properties.properties.scaleSettings.maxNodeCount")?.int == 3)
                _ = try await CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(), schedule: [0]).deliverDue()
            }
            let message = try #require(slackReceiver.accepted.first)
            let text = JSONValue(json: message.body)?["text"]?.string ?? ""
            #expect(text.contains("/aml scale cpu-cluster 3") && text.contains("scale_compute succeeded"), "\(text)")
            #expect(message.headers[HTTPField.Name("webhook-signature")!] == nil, "Slack's response_url is not signed")
        }
    }

    @Test func aCommandGetsAtMostFiveSlackResponses() async throws {
        let slackReceiver = Receiver(failFirst: 0)
        let rApp = Application(router: slackReceiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await rApp.test(.live) { rc in
            let h = try IngressHarness(config: """
                sources: [ { name: slack, type: slack, secrets: [ { env: SL } ] } ]
                rules:
                  - name: scale-all
                    when: { source: slack, command: "/aml scale-all {nodes:int}" }
                    actions:
                      - scale_compute: { name: cpu-cluster, max_nodes: "{{ args.nodes }}" }
                      - scale_compute: { name: cpu-cluster, max_nodes: "{{ args.nodes }}" }
                      - scale_compute: { name: cpu-cluster, max_nodes: "{{ args.nodes }}" }
                      - scale_compute: { name: cpu-cluster, max_nodes: "{{ args.nodes }}" }
                      - scale_compute: { name: cpu-cluster, max_nodes: "{{ args.nodes }}" }
                      - scale_compute: { name: cpu-cluster, max_nodes: "{{ args.nodes }}" }
                    callback: [ { slack: {} } ]
                """)
            defer { h.dir.remove() }
            let answer = try await h.postSlackCommand("command=%2Faml&text=scale-all+2&user_id=U1&response_url=" + FormURLEncoded.escape("http://127.0.0.1:\(rc.port!)/r"))
            #expect(answer.status == .ok)
            try await withAML(h) { runner, _ in
                while try await runner.runOne() {}
                _ = try await CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(), schedule: [0]).deliverDue()
            }
            #expect(try await h.store.jobs(limit: nil, state: .succeeded).count == 6)
            #expect(slackReceiver.accepted.count == 5, "Slack takes at most 5 responses per response_url")
            #expect(h.logs.lines.contains { $0.message.contains("already has 5 responses") })
        }
    }

    @Test func aPushGetsPendingThenSuccessCommitStatuses() async throws {
        let github = Receiver(failFirst: 0)
        let gApp = Application(router: github.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await gApp.test(.live) { gc in
            let h = try IngressHarness(config: """
                sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
                rules:
                  - name: retrain
                    when: { kind: push, branches: [main] }
                    actions:
                      - start_run: { experiment: status-demo, dir: ".", script: t.py, compute: cpu-cluster, repository: "file://\(FileManager.default.temporaryDirectory.path)/ignored", ref: "x" }
                    callback:
                      - github_status: { token: { env: GH_TOKEN }, api_base: "http://127.0.0.1:\(gc.port!)", context: "mlhook/train" }
                """)
            defer { h.dir.remove() }
            // A repository whose commit the push names (the action's repository/ref are replaced below).
            let repo = h.dir.file("repo")
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            try "print('ok')\n".write(toFile: repo + "/t.py", atomically: true, encoding: .utf8)
            let git = PushToRunTests()
            _ = try await git.git(["init", "-q", "-b", "main"], in: repo)
            _ = try await git.git(["add", "."], in: repo)
            _ = try await git.git(["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "t"], in: repo)
            let sha = try await git.git(["rev-parse", "HEAD"], in: repo)
            try h.install("""
                sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
                rules:
                  - name: retrain
                    when: { kind: push, branches: [main] }
                    actions: [ { start_run: { experiment: status-demo, dir: ".", script: t.py, compute: cpu-cluster, repository: "file://\(repo)", ref: "\(sha)" } } ]
                    callback: [ { github_status: { token: { env: GH_TOKEN }, api_base: "http://127.0.0.1:\(gc.port!)", context: "mlhook/train" } } ]
                """)
            let event = try IngressHarness.pushEvent(branch: "main", after: sha)
            _ = try await h.store.append(event)
            _ = try await EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger()).planPending()
            try await withAML(h) { runner, _ in
                let deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(),
                                                  environment: ["GH_TOKEN": "ghp_test_token"], schedule: [0])
                while try await runner.runOne() {}
                _ = try await deliverer.deliverDue()
                for _ in 0..<200 where try await h.store.jobs(limit: nil, state: .watching).count > 0 {
                    _ = try await runner.watchOne()
                    try await Task.sleep(for: .milliseconds(50))
                }
                _ = try await deliverer.deliverDue()
            }
            let states = github.accepted.compactMap { JSONValue(json: $0.body)?["state"]?.string }
            #expect(states == ["pending", "success"], "\(states)")
            #expect(github.accepted.allSatisfy { $0.headers[.authorization] == "Bearer ghp_test_token" })
            #expect(github.paths.allSatisfy { $0 == "/repos/Codertocat/Hello-World/statuses/\(sha)" }, "\(github.paths)")
            #expect(JSONValue(json: github.accepted.last?.body ?? [])?["context"]?.string == "mlhook/train")
        }
    }
}

/// `supersede: true`: a newer push to the same branch cancels the rule's older run.
@Suite struct SupersedeTests {
    @Test func aNewerPushCancelsTheOlderRunOfTheRule() async throws {
        let h = try IngressHarness(config: "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n")
        defer { h.dir.remove() }
        let repo = h.dir.file("repo")
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        let git = PushToRunTests()
        _ = try await git.git(["init", "-q", "-b", "main"], in: repo)
        try "import time\ntime.sleep(60)\n".write(toFile: repo + "/t.py", atomically: true, encoding: .utf8)
        _ = try await git.git(["add", "."], in: repo)
        _ = try await git.git(["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "slow"], in: repo)
        let slow = try await git.git(["rev-parse", "HEAD"], in: repo)
        try "print('fast')\n".write(toFile: repo + "/t.py", atomically: true, encoding: .utf8)
        _ = try await git.git(["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-am", "fast"], in: repo)
        let fast = try await git.git(["rev-parse", "HEAD"], in: repo)
        try h.install("""
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: train
                when: { kind: push, branches: [main] }
                supersede: true
                actions: [ { start_run: { experiment: sup, dir: ".", script: t.py, compute: cpu-cluster, repository: "file://\(repo)", ref: "{{ after }}" } } ]
            """)
        let planner = EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger())
        try await ChatOpsAndStatusTests().withAML(h) { runner, _ in
            _ = try await h.store.append(try IngressHarness.pushEvent(branch: "main", after: slow))
            _ = try await planner.planPending()
            while try await runner.runOne() {}
            let first = try #require(try await h.store.jobs(limit: nil, state: .watching).first)
            // The newer push to main supersedes it.
            _ = try await h.store.append(try IngressHarness.pushEvent(branch: "main", after: fast))
            _ = try await planner.planPending()
            while try await runner.runOne() {}
            for _ in 0..<300 where try await h.store.jobs(limit: nil, state: .watching).count > 0 {
                _ = try await runner.watchOne()
                try await Task.sleep(for: .milliseconds(50))
            }
            let old = try #require(try await h.store.job(id: first.id))
            #expect(old.state == .failed && old.lastError?.contains("superseded") == true, "\(old)")
            #expect(old.result?.contains("\"status\":\"Canceled\"") == true, "the older run was canceled, not left running")
            let newer = try #require(try await h.store.jobs(limit: nil, state: nil).first { $0.id != first.id })
            #expect(newer.state == .succeeded && newer.result?.contains(fast) == true)
        }
    }
}
