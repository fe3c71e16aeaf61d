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
import NIOHTTP1
import Signing
import Store
import Synchronization
import TestSupport
import Testing

/// A proxy in front of aml-local that answers like a throttled or failing Azure: 429 with Retry-After, 503,
/// and (for run starts, v2 job submits, code and model version PUTs) a 503 after the request was really served,
/// so the answer is lost — once per kind.
final class FlakyAzure: Sendable {
    let target: String
    private let counter = Mutex<(n: Int, faults: Int, lost: Set<String>)>((0, 0, []))
    var faults: Int { counter.withLock { $0.faults } }
    /// How many answers were lost (one per kind: startrun, v2 jobs, v2 codes, v2 models).
    var lostStarts: Int { counter.withLock { $0.lost.count } }

    /// The kind of request whose first answer is lost, if it is one.
    static func losable(_ method: HTTPRequest.Method, _ path: String) -> String? {
        if path.hasSuffix("/startrun") { return "startrun" }
        guard method == .put else { return nil }
        for kind in ["/jobs/", "/codes/", "/models/"] where path.contains(kind) && path.contains("/providers/") { return kind }
        return nil
    }

    init(target: String) { self.target = target }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("**", method: method) { req, _ in try await self.answer(req) }
        }
        return router
    }

    func answer(_ req: Request) async throws -> Response {
        let n = counter.withLock { $0.n += 1; return $0.n }
        let losable = Self.losable(req.method, req.uri.path)
        let isStart = losable != nil
        // Every third request is throttled, every third (offset) fails, before reaching Azure.
        if n % 3 == 1 && !isStart {
            counter.withLock { $0.faults += 1 }
            return Response(status: .tooManyRequests, headers: [.retryAfter: "1", .contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"code":"TooManyRequests","message":"throttled"}}"#)))
        }
        if n % 3 == 2 && !isStart {
            counter.withLock { $0.faults += 1 }
            return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "upstream unavailable")))
        }
        let body = try await req.body.collect(upTo: 64 << 20)
        var forward = HTTPClientRequest(url: target + req.uri.description)
        forward.method = HTTPMethod(rawValue: req.method.rawValue)
        for field in req.headers where field.name.canonicalName != "host" { forward.headers.add(name: field.name.rawName, value: field.value) }
        forward.body = .bytes(body)
        let reply = try await HTTPClient.shared.execute(forward, timeout: .seconds(60))
        let replyBody = try await reply.body.collect(upTo: 64 << 20)
        // The first start reaches Azure, but its answer is lost.
        if let losable, counter.withLock({ $0.lost.insert(losable).inserted }) {
            return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "gateway timeout")))
        }
        var headers = HTTPFields()
        for h in reply.headers where !["transfer-encoding", "content-length", "connection"].contains(h.name.lowercased()) {
            if let name = HTTPField.Name(h.name) { headers[name] = h.value }
        }
        return Response(status: .init(code: Int(reply.status.code)), headers: headers, body: .init(byteBuffer: replyBody))
    }
}

@Suite struct JobFaultTests {
    /// A repository whose `train/train.py` prints its arguments. - Returns: its path and commit.
    func repo(_ h: IngressHarness) async throws -> (path: String, sha: String) {
        let path = h.dir.file("repo")
        return (path, try await ProviderEndToEndTests().makeRepo(path, script: "import sys\nprint('nightly', sys.argv[1:])\n"))
    }

    /// Polls the watcher until no job is watching.
    func watchAll(_ h: IngressHarness, _ runner: JobRunner) async throws {
        for _ in 0..<400 where try await h.store.jobs(limit: nil, state: .watching).count > 0 {
            _ = try await runner.watchOne()
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func aNightlyScheduleTrainsTheBranchHeadAndCallsBack() async throws {
        let receiver = Receiver(failFirst: 0)
        let rApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await rApp.test(.live) { rc in
            let h = try IngressHarness(config: "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n")
            defer { h.dir.remove() }
            let (path, sha) = try await repo(h)
            try h.install("""
                sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
                rules:
                  - name: nightly
                    when: { schedule: "0 2 * * *", timezone: UTC }
                    actions: [ { start_run: { experiment: nightly, dir: train, script: train.py, compute: cpu-cluster, arguments: ["--tick", "{{ schedule.tick }}"],
                                              repository: "file://\(path)", ref: main } } ]
                    callback: [ { url: { url: "http://127.0.0.1:\(rc.port!)/nightly", secret: { env: NIGHTLY_CB } } } ]
                """)
            // The injected clock: 01:59:50, then past 02:00.
            let clock = ManualClock(ISO8601DateFormatter().date(from: "2026-11-22T01:59:50Z")!)
            let scheduler = Scheduler(store: h.store, live: h.runtime.live, clock: clock, logger: h.logs.logger())
            let task = Task { try await scheduler.run() }
            defer { task.cancel() }
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await h.store.list(limit: nil, source: "schedule").isEmpty, "nothing fires before 02:00")
            clock.advance(to: ISO8601DateFormatter().date(from: "2026-11-22T02:00:05Z")!)
            #expect(try await eventually { try await h.store.list(limit: nil, source: "schedule").count == 1 })
            _ = try await EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger()).planPending()
            let secret = "whsec_" + ByteEncoding.base64(Array(repeating: 5, count: 32))
            try await ChatOpsAndStatusTests().withAML(h) { runner, api in
                while try await runner.runOne() {}
                try await watchAll(h, runner)
                let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
                #expect(job.state == .succeeded, "\(job.lastError ?? "")")
                let details = try await api.runDetails(experiment: "nightly", runID: "mlhook_\(job.id)")
                let log = try await api.download(details["logFiles"]?.object["azureml-logs/70_driver_log.txt"]?.string ?? "")
                #expect(String(decoding: log, as: UTF8.self).contains("nightly ['--tick', '2026-11-22T02:00:00Z']"))
                _ = try await CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(), environment: ["NIGHTLY_CB": secret],
                                                schedule: [0]).deliverDue()
            }
            let delivered = try #require(receiver.accepted.first)
            let verifier = try StandardWebhooksVerifier(secrets: [WebhookSecret(secret)])
            #expect(throws: Never.self) { try delivered.body.withUnsafeBytes { _ = try verifier.verify(headers: delivered.headers, body: $0, now: Date()) } }
            let doc = try #require(JSONValue(json: delivered.body))
            #expect(doc.value(at: "data.result.status")?.string == "Completed" && doc.value(at: "data.event.source")?.string == "schedule")
            #expect(doc.value(at: "data.result.commit")?.string == sha, "the branch was pinned to the commit it named")
        }
    }

    /// The same faults with `mlhook serve` and `mlhook aml-local` as real processes: the service reaches Azure
    /// (in cloud mode) only through the flaky proxy.
    @Test func realProcessesCompleteJobsThroughThrottlingAndOutages() async throws {
        let dir = try TemporaryDirectory("mlhook-flaky")
        defer { dir.remove() }
        let aml = try await AMLLocalProcess.start(in: dir)
        defer { aml.process.signal(SIGTERM) }
        let sha = try await ProviderEndToEndTests().makeRepo(dir.file("repo"))
        try Data(try Fixtures.githubPush(commit: sha, cloneURL: "file://\(dir.file("repo"))")).write(to: URL(fileURLWithPath: dir.file("push.json")))
        let flaky = FlakyAzure(target: aml.credential("base_url"))
        let proxyApp = Application(router: flaky.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await proxyApp.test(.live) { pc in
            let proxy = "http://127.0.0.1:\(pc.port!)"
            try """
                server: { listen: "127.0.0.1:0" }
                store: { path: "\(dir.file("mlhook.db"))" }
                jobs: { retry_base_seconds: 1, retry_max_seconds: 2 }
                \(aml.cloudYAML(secretEnv: "AML_SECRET", via: proxy))
                sources: [ { name: github, type: github, secrets: [ { env: GH } ], git_schemes: [file] } ]
                rules:
                  - name: flaky
                    when: { source: github, kind: push, branches: [main] }
                    actions:
                      - start_run: { experiment: flaky, dir: train, script: train.py, compute: cpu-cluster }
                      - scale_compute: { name: cpu-cluster, max_nodes: 2 }
                      - register_model: { name: flaky-model, url: "https://models.example.com/m.pkl" }
                """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
            let env = ["GH": "flaky-secret", "AML_SECRET": aml.credential("client_secret")]
            let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            defer { server.signal(SIGTERM) }
            let sent = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                                 "--to", "http://127.0.0.1:\(server.port)/hooks/github", "--wait"], environment: env, directory: dir.path)
            #expect(sent.status == 0, "\(sent.output)\n\(server.log.suffix(2000))")
            for action in ["start_run: succeeded", "scale_compute: succeeded", "register_model: succeeded"] {
                #expect(sent.output.contains(action), "\(action): \(sent.output)")
            }
            #expect(flaky.faults >= 6 && flaky.lostStarts == 1, "\(flaky.faults) faults answered")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs")).count == 1, "one run despite the lost answer")
            let models = try await runMLHook(["aml", "models", "ls", "--credentials", aml.credentialsFile], environment: [:], directory: dir.path)
            #expect(models.output.components(separatedBy: "flaky-model:").count - 1 == 1, "one model version: \(models.output)")
        }
    }

    @Test func jobsCompleteThroughThrottlingOutagesAndALostStartAnswer() async throws {
        let h = try IngressHarness(config: "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n")
        defer { h.dir.remove() }
        let (path, sha) = try await repo(h)
        try h.install("""
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: flaky
                when: { kind: push, branches: [main] }
                actions:
                  - start_run: { experiment: flaky, dir: train, script: train.py, compute: cpu-cluster, repository: "file://\(path)", ref: "\(sha)" }
                  - scale_compute: { name: cpu-cluster, max_nodes: 2 }
                  - register_model: { name: flaky-model, url: "https://models.example.com/m.pkl" }
            """)
        try await throughFlakyAzure(h) { aml, flaky in
            let jobs = try await h.store.jobs(limit: nil, state: nil)
            #expect(jobs.count == 3 && jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { "\($0.action) \($0.state) \($0.lastError ?? "")" })")
            #expect(flaky.faults >= 6 && flaky.lostStarts == 1, "\(flaky.faults) faults")
            // Effect once: one run despite the lost answer, one model version.
            #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml/runs")).count == 1)
            let direct = HTTPAzureMLClient(settings: .local(aml))
            #expect(try await direct.models(name: "flaky-model").count == 1)
            #expect(try await direct.compute("cpu-cluster").value(at: "properties.properties.scaleSettings.maxNodeCount")?.int == 2)
        }
    }

    @Test func v2JobsCompleteThroughThrottlingOutagesAndLostAnswers() async throws {
        let h = try IngressHarness(config: "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n")
        defer { h.dir.remove() }
        let (path, sha) = try await repo(h)
        try h.install("""
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            azureml: { api: v2 }
            rules:
              - name: flaky-v2
                when: { kind: push, branches: [main] }
                actions:
                  - submit_job: { command: "python train.py --lr 0.5", environment: "azureml:AzureML-sklearn-1.5@latest", compute: cpu-cluster, dir: train, repository: "file://\(path)", ref: "\(sha)", register_model: flaky-v2 }
                  - register_model: { name: flaky-url, url: "https://models.example.com/m.pkl" }
            """)
        try await throughFlakyAzure(h) { aml, flaky in
            #expect(flaky.faults >= 6 && flaky.lostStarts == 3, "\(flaky.faults) faults, \(flaky.lostStarts) answers lost (jobs, codes, models)")
            let jobs = try await h.store.jobs(limit: nil, state: nil)
            #expect(jobs.count == 2 && jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { "\($0.action) \($0.state) \($0.lastError ?? "")" })")
            // Effect once: one job run despite its lost answer, one code asset, one version of each model.
            #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml/runs")).count == 1)
            #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml/blobs/local")).count == 1)
            let direct = HTTPAzureMLClient(settings: .local(aml))
            #expect(try await direct.modelVersions(name: "flaky-v2", includeArchived: true).count == 1)
            #expect(try await direct.modelVersions(name: "flaky-url", includeArchived: true).count == 1)
        }
    }

    /// Plans the harness's pending push, then runs and watches its jobs through a `FlakyAzure` in front of a live
    /// aml-local, and hands both to `check` once every job ended.
    func throughFlakyAzure(_ h: IngressHarness, _ check: @Sendable (AMLLocal, FlakyAzure) async throws -> Void) async throws {
        _ = try await h.store.append(try IngressHarness.pushEvent(branch: "main"))
        _ = try await EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger()).planPending()
        let aml = try AMLLocal(settings: { var s = AMLLocalSettings(dataDirectory: h.dir.file("aml")); s.provisioningDelay = 0.05; return s }(),
                               logger: Logger(label: "aml"))
        defer { aml.shutdown() }
        let amlApp = Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                 onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
        try await amlApp.test(.live) { _ in
            let flaky = FlakyAzure(target: aml.settings.baseURL)
            let proxyApp = Application(router: flaky.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await proxyApp.test(.live) { pc in
                let base = "http://127.0.0.1:\(pc.port!)"
                var settings = AzureMLSettings.local(aml)
                settings.authorityURL = base
                settings.armURL = base
                settings.dataPlaneOverride = base
                settings.retry.baseDelay = 0.05
                settings.retry.maxAttempts = 3
                let client = HTTPAzureMLClient(settings: settings)
                let runner = JobRunner(store: h.store, live: h.runtime.live, client: { client }, logger: h.logs.logger(),
                                       baseBackoff: 0.05, maxBackoff: 0.2, git: GitSource(cacheDirectory: h.dir.file("git-cache")))
                for _ in 0..<200 {
                    let queued = try await h.store.jobs(limit: nil, state: .queued)
                    if queued.isEmpty { break }
                    if try await !runner.runOne() { try await Task.sleep(for: .milliseconds(60)) }
                }
                try await watchAll(h, runner)
            }
            try await check(aml, flaky)
        }
    }
}
