import AMLLocal
import AzureML
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
@testable import MLHookServer
import NIOCore
import Signing
@testable import Store
import Synchronization
import TestSupport
import Testing

/// A signed GitHub push naming a commit of a real git repo becomes a real python3 run on aml-local, watched to
/// Completed; the same delivery twice makes one run.
@Suite struct PushToRunTests {
    func git(_ args: [String], in dir: String) async throws -> String {
        try await runProcessAsync("/usr/bin/env", ["git", "-C", dir] + args, errors: false).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aSignedPushBecomesACompletedRun() async throws {
        let config = """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: retrain
                when: { source: github, kind: push, branches: [main], paths: ["train/**"] }
                actions:
                  - start_run: { experiment: "{{ repository.name | slug }}", dir: train, script: train.py, arguments: ["--commit", "{{ after | short }}"], compute: cpu-cluster }
                callback:
                  - url: { url: "RECEIVER/mlhook", secret: { env: CALLBACK_SECRET } }
            """
        // A callback receiver on loopback that fails twice before it accepts.
        let receiver = Receiver(failFirst: 2)
        let receiverApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await receiverApp.test(.live) { rc in
        let h = try IngressHarness(config: config.replacingOccurrences(of: "RECEIVER", with: "http://127.0.0.1:\(rc.port!)"))
        defer { h.dir.remove() }
        // A real repository with a training script.
        let repo = h.dir.file("repo")
        try FileManager.default.createDirectory(atPath: repo + "/train", withIntermediateDirectories: true)
        _ = try await git(["init", "-q", "-b", "main"], in: repo)
        try "import sys\nprint('training at', sys.argv[1:])\n".write(toFile: repo + "/train/train.py", atomically: true, encoding: .utf8)
        _ = try await git(["add", "."], in: repo)
        _ = try await git(["-c", "user.email=ci@example.com", "-c", "user.name=CI", "commit", "-q", "-m", "train"], in: repo)
        let sha = try await git(["rev-parse", "HEAD"], in: repo)
        #expect(sha.count == 40)

        // GitHub's documented push payload, pointed at that commit and repository.
        let body = try Fixtures.githubPush(commit: sha, cloneURL: "file://\(repo)")

        let aml = try AMLLocal(settings: AMLLocalSettings(dataDirectory: h.dir.file("aml")), logger: Logger(label: "aml"))
        let amlApp = Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                 onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
        try await amlApp.test(.live) { _ in
            try await h.app.test(.router) { client in
                let headers = HTTPFields(try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
                    + [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "push-1"), ("Content-Type", "application/json")])
                for _ in 0..<2 {  // the same delivery posted twice
                    try await client.execute(uri: "/hooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { _ in }
                }
            }
            let makeClient: @Sendable () async throws -> HTTPAzureMLClient = { HTTPAzureMLClient(settings: .local(aml)) }
            let runner = JobRunner(store: h.store, live: h.runtime.live, client: makeClient, logger: h.logs.logger(),
                                   git: GitSource(cacheDirectory: h.dir.file("git-cache")))
            while try await runner.runOne() {}
            let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
            #expect(job.state == .watching, "\(job.lastError ?? "")")
            var finished: JobRecord?
            for _ in 0..<300 {
                _ = try await runner.watchOne()
                if let j = try await h.store.job(id: job.id), j.state != .watching { finished = j; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let done = try #require(finished)
            #expect(done.state == .succeeded, "\(done.lastError ?? "")")
            let result = try #require(JSONValue(json: Array((done.result ?? "").utf8)))
            #expect(result["status"]?.string == "Completed" && result["commit"]?.string == sha && result["run_id"]?.string == "mlhook_\(job.id)")
            // Exactly one run, and it ran the commit's script with the rendered arguments.
            let api = try await makeClient()
            let details = try await api.runDetails(experiment: "hello-world", runID: "mlhook_\(job.id)")
            let log = try await api.download(details["logFiles"]?.object["azureml-logs/70_driver_log.txt"]?.string ?? "")
            #expect(String(decoding: log, as: UTF8.self).contains("training at ['--commit', '\(sha.prefix(7))']"))
            #expect(try await h.store.jobs(limit: nil, state: nil).count == 1, "the same delivery twice: one job, one run")
            #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml/runs")).count == 1)

            // The callback: retried past two failures, then delivered, signed, naming the run and the commit.
            let secret = "whsec_" + ByteEncoding.base64(Array("callback-secret-32-bytes-long!!!".utf8))
            let deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(),
                                              environment: ["CALLBACK_SECRET": secret], schedule: [0, 0, 0])
            for _ in 0..<10 where receiver.accepted.isEmpty {
                _ = try await deliverer.deliverDue()
                try await Task.sleep(for: .milliseconds(20))
            }
            let delivered = try #require(receiver.accepted.first)
            #expect(receiver.attempts == 3)
            let verifier = try StandardWebhooksVerifier(secrets: [WebhookSecret(secret)])
            #expect(throws: Never.self) { try delivered.body.withUnsafeBytes { _ = try verifier.verify(headers: delivered.headers, body: $0, now: Date()) } }
            let doc = try #require(JSONValue(json: delivered.body))
            #expect(doc.value(at: "data.status")?.string == "succeeded")
            #expect(doc.value(at: "data.result.run_id")?.string == "mlhook_\(job.id)" && doc.value(at: "data.result.status")?.string == "Completed")
            #expect(doc.value(at: "data.provenance.commit")?.string == sha && doc.value(at: "data.event.delivery_id")?.string == "push-1")
            #expect(try await h.store.callbacks(limit: nil, state: .delivered).count == 1)
        }
        aml.shutdown()
        }
    }

    @Test func aCallbackThatNeverSucceedsIsDeadLettered() async throws {
        let receiver = Receiver(failFirst: 1000)
        let app = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { rc in
            let h = try IngressHarness(config: """
                sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
                rules:
                  - name: r
                    when: { kind: push }
                    actions: [ { delete_model: { id: "m:1" } } ]
                    callback: [ { url: { url: "http://127.0.0.1:\(rc.port!)/cb", secret: { env: CB } } } ]
                """)
            defer { h.dir.remove() }
            try await h.store.enqueueCallback(NewCallback(jobID: "job_1", eventID: "evt_1", rule: "r", targetIndex: 0, kind: "url",
                                                          url: "http://127.0.0.1:\(rc.port!)/cb", body: #"{"data":{}}"#))
            // A plain secret works too: its bytes are the key.
            let deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(), environment: ["CB": "plain secret"],
                                              schedule: [0, 0])
            for _ in 0..<5 { _ = try await deliverer.deliverDue() }
            let dead = try #require(try await h.store.callbacks(limit: nil, state: .dead).first)
            #expect(dead.attempts == 3 && dead.lastStatus == 500 && dead.lastError?.contains("500") == true)
            #expect(receiver.attempts == 3, "no attempt after the dead letter")
            let verifier = try StandardWebhooksVerifier(secrets: [WebhookSecret("whsec_" + ByteEncoding.base64(Array("plain secret".utf8)))])
            let last = try #require(receiver.last)
            #expect(throws: Never.self) { try last.body.withUnsafeBytes { _ = try verifier.verify(headers: last.headers, body: $0, now: Date()) } }
        }
    }
}

/// A callback receiver that answers 500 to its first `failFirst` requests.
final class Receiver: Sendable {
    struct Delivery: Sendable { let headers: HTTPFields; let body: [UInt8]; let path: String }
    private let state = Mutex<(attempts: Int, accepted: [Delivery], last: Delivery?)>((0, [], nil))
    var paths: [String] { state.withLock { $0.accepted.map(\.path) } }
    /// Whether attempt n (1-based) fails with a 500.
    let fails: @Sendable (Int) -> Bool
    init(failFirst: Int) { fails = { $0 <= failFirst } }
    /// A receiver that fails every other attempt, starting with the first.
    init(failingEveryOther: Void) { fails = { $0 % 2 == 1 } }
    var attempts: Int { state.withLock { $0.attempts } }
    var accepted: [Delivery] { state.withLock { $0.accepted } }
    var last: Delivery? { state.withLock { $0.last } }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("**") { req, _ -> Response in
            let body = Array(try await req.body.collect(upTo: 1 << 20).readableBytesView)
            let d = Delivery(headers: req.headers, body: body, path: req.uri.path)
            let ok = self.state.withLock { s -> Bool in
                s.attempts += 1
                s.last = d
                if !self.fails(s.attempts) { s.accepted.append(d); return true }
                return false
            }
            return Response(status: ok ? .ok : .internalServerError)
        }
        return router
    }
}

/// A queued callback keeps where its secret comes from: a reload that reorders or removes the rule's targets does
/// not make it sign with another target's secret, and a rotated secret is read at delivery.
@Suite struct CallbackCredentialTests {
    @Test func aQueuedCallbackSignsWithItsOwnSecretAfterAReload() async throws {
        let receiver = Receiver(failFirst: 0)
        let app = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { rc in
            let url = "http://127.0.0.1:\(rc.port!)/cb"
            let h = try IngressHarness()
            defer { h.dir.remove() }
            try h.install("""
                sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
                rules:
                  - name: r
                    when: { kind: push }
                    actions: [ { delete_model: { id: "m:1" } } ]
                    callback: [ { url: { url: "\(url)", secret: { env: CB_A } } }, { url: { url: "\(url)", secret: { env: CB_B } } } ]
                """)
            let rule = try #require(h.runtime.live.snapshot.config.rules.first)
            let job = JobRecord(id: "job_1", idempotencyKey: "k", eventID: "evt_1", rule: "r", actionIndex: 0, action: "delete_model",
                                parameters: "{}", state: .succeeded, attempts: 1, maxAttempts: 3, createdAt: Date())
            let queued = CallbackFormatter.callbacks(for: job, rule: rule, event: nil, state: .succeeded, result: ["deleted": "m:1"], error: nil,
                                                     phase: .final, now: Date())
            #expect(queued.map(\.credential) == [.env("CB_A"), .env("CB_B")])
            try await h.store.enqueueCallback(queued[0])
            // The targets are swapped by a reload before delivery; then the rule goes away altogether.
            try h.install("""
                sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
                rules:
                  - name: other
                    when: { kind: push }
                    actions: [ { delete_model: { id: "m:1" } } ]
                """)
            let deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(),
                                              environment: ["CB_A": "secret-a-rotated", "CB_B": "secret-b"], schedule: [0])
            #expect(try await deliverer.deliverDue() == 1)
            #expect(try await h.store.callback(id: queued[0].id)?.state == .delivered)
            let last = try #require(receiver.last)
            func verifies(_ secret: String) throws -> Bool {
                let v = try StandardWebhooksVerifier(secrets: [WebhookSecret("whsec_" + ByteEncoding.base64(Array(secret.utf8)))])
                return last.body.withUnsafeBytes { raw in (try? v.verify(headers: last.headers, body: raw, now: Date())) != nil }
            }
            #expect(try verifies("secret-a-rotated"), "signed with target 0's secret as it is now")
            #expect(try !verifies("secret-b"))
        }
    }
}
