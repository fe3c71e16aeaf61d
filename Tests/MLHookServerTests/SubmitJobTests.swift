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
import TestSupport
import Testing

/// The v2 path end to end with real processes: a signed push names a commit of a real git repository; `submit_job`
/// uploads the rule's folder as a code asset and submits a command job that aml-local really runs with python; the
/// watcher follows it to Completed, registers its output as a v2 model version, and the signed callback names the
/// job, the model version and the commit.
@Suite struct SubmitJobTests {
    func git(_ args: [String], in dir: String) async throws -> String { try await PushToRunTests().git(args, in: dir) }

    func commit(_ repo: String, _ message: String) async throws -> String {
        _ = try await git(["add", "."], in: repo)
        _ = try await git(["-c", "user.email=ci@example.com", "-c", "user.name=CI", "commit", "-q", "--allow-empty", "-m", message], in: repo)
        return try await git(["rev-parse", "HEAD"], in: repo)
    }

    /// A git repository in the harness's directory whose `train/train.py` is `script`. - Returns: its path and commit.
    func trainingRepository(_ h: IngressHarness) async throws -> (path: String, sha: String) {
        let repo = h.dir.file("repo")
        try FileManager.default.createDirectory(atPath: repo + "/train", withIntermediateDirectories: true)
        _ = try await git(["init", "-q", "-b", "main"], in: repo)
        try Self.script.write(toFile: repo + "/train/train.py", atomically: true, encoding: .utf8)
        return (repo, try await commit(repo, "train"))
    }

    static let script = """
        import argparse, os
        p = argparse.ArgumentParser(); p.add_argument("--commit"); p.add_argument("--lr"); a = p.parse_args()
        print("training", a.commit, "lr", a.lr, flush=True)
        os.makedirs("outputs/model", exist_ok=True)
        open("outputs/model/weights.txt", "w").write(a.lr)
        """

    @Test func aSignedPushBecomesACompletedCommandJobAModelVersionAndACallback() async throws {
        let config = """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            azureml: { api: v2 }
            rules:
              - name: train-v2
                when: { source: github, kind: push, branches: [main] }
                actions:
                  - submit_job:
                      dir: train
                      command: "python train.py --commit {{ after | short }} --lr ${{inputs.lr}}"
                      inputs: { lr: "0.25" }
                      environment: "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"
                      compute: cpu-cluster
                      experiment: "{{ repository.name | slug }}"
                      register_model: demo-model
                callback:
                  - url: { url: "RECEIVER/mlhook", secret: { env: CALLBACK_SECRET } }
            """
        let receiver = Receiver(failFirst: 0)
        let receiverApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await receiverApp.test(.live) { rc in
            let h = try IngressHarness(config: config.replacingOccurrences(of: "RECEIVER", with: "http://127.0.0.1:\(rc.port!)"))
            defer { h.dir.remove() }
            let repo = h.dir.file("repo")
            try FileManager.default.createDirectory(atPath: repo + "/train", withIntermediateDirectories: true)
            _ = try await git(["init", "-q", "-b", "main"], in: repo)
            try Self.script.write(toFile: repo + "/train/train.py", atomically: true, encoding: .utf8)
            try "readme".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
            let first = try await commit(repo, "train")
            // A second commit that changes nothing under train/: its code asset is the first one's.
            try "readme, edited".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
            let second = try await commit(repo, "docs")

            let aml = try AMLLocal(settings: AMLLocalSettings(dataDirectory: h.dir.file("aml")), logger: Logger(label: "aml"))
            let amlApp = Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                     onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
            try await amlApp.test(.live) { _ in
                try await h.app.test(.router) { client in
                    for (sha, delivery) in [(first, "push-1"), (first, "push-1"), (second, "push-2")] {  // push-1 delivered twice
                        let body = try Fixtures.githubPush(commit: sha, cloneURL: "file://\(repo)")
                        let headers = HTTPFields(try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
                            + [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", delivery), ("Content-Type", "application/json")])
                        try await client.execute(uri: "/hooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { _ in }
                    }
                }
                let makeClient: @Sendable () async throws -> HTTPAzureMLClient = { HTTPAzureMLClient(settings: .local(aml)) }
                let runner = JobRunner(store: h.store, live: h.runtime.live, client: makeClient, logger: h.logs.logger(),
                                       git: GitSource(cacheDirectory: h.dir.file("git-cache")))
                while try await runner.runOne() {}
                let jobs = try await h.store.jobs(limit: nil, state: nil)
                #expect(jobs.count == 2, "push-1 twice and push-2: two jobs")
                for job in jobs { #expect(job.state == .watching, "\(job.lastError ?? "")") }
                for _ in 0..<400 {
                    _ = try await runner.watchOne()
                    if try await h.store.jobs(limit: nil, state: .watching).isEmpty { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let api = try await makeClient()
                var models: [String] = []
                for job in try await h.store.jobs(limit: nil, state: nil) {
                    #expect(job.state == .succeeded, "\(job.lastError ?? "")")
                    let result = try #require(JSONValue(json: Array((job.result ?? "").utf8)))
                    let name = "mlhook_\(job.id)"
                    #expect(result["job_name"]?.string == name && result["status"]?.string == "Completed")
                    #expect(result["studio_url"]?.string?.contains("/studio/runs/") == true && result["studio_url"]?.string?.contains("?sig=") == true, "\(result)")
                    #expect(result["duration_seconds"]?.text.first?.isNumber == true, "\(result)")
                    models.append(result["model"]?.string ?? "")
                    // The job ran the commit's script with the rendered command and the literal input.
                    let details = try await api.jobDetails(name: name)
                    let log = try await api.download(details["logFiles"]?.object["user_logs/std_log.txt"]?.string ?? "")
                    let sha = result["commit"]?.string ?? ""
                    #expect(String(decoding: log, as: UTF8.self).contains("training \(sha.prefix(7)) lr 0.25"), "\(String(decoding: log, as: UTF8.self))")
                    let submitted = try await api.job(name: name)
                    #expect(submitted.value(at: "properties.tags.mlhook_commit")?.string == sha)
                    #expect(submitted.value(at: "properties.tags.mlhook_repository")?.string == "Codertocat/Hello-World")
                }
                #expect(models.sorted() == ["demo-model:1", "demo-model:2"])
                let versions = try await api.modelVersions(name: "demo-model", includeArchived: true)
                #expect(versions.count == 2, "one version per job")
                #expect(versions.allSatisfy { $0.value(at: "properties.modelUri")?.string?.hasPrefix("azureml://jobs/mlhook_") == true })
                // Both commits have the same train/ folder: one code asset, uploaded once.
                #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml/blobs/local")).count == 1)
                let ids = Set(try await h.store.jobs(limit: nil, state: nil).compactMap { JSONValue(json: Array(($0.result ?? "").utf8))?["code_id"]?.string })
                #expect(ids.count == 1)

                // A watcher pass repeated after the job ended (a crash before its state was saved) registers nothing new.
                let anyJob = try #require(try await h.store.jobs(limit: nil, state: nil).first)
                let again = try await RegisterModel.registerV2(api, name: "demo-model", uri: "azureml://jobs/x/outputs/artifacts/paths/model/",
                                                               tags: ["mlhook_job": .string(anyJob.id)], description: nil)
                #expect(models.contains(again))
                #expect(try await api.modelVersions(name: "demo-model", includeArchived: true).count == 2)

                // The callbacks: signed, naming the job, the model version and the commit.
                let secret = "whsec_" + ByteEncoding.base64(Array("callback-secret-32-bytes-long!!!".utf8))
                let deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(),
                                                  environment: ["CALLBACK_SECRET": secret], schedule: [0, 0, 0])
                for _ in 0..<20 where receiver.accepted.count < 2 {
                    _ = try await deliverer.deliverDue()
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(receiver.accepted.count == 2)
                let verifier = try StandardWebhooksVerifier(secrets: [WebhookSecret(secret)])
                var shas: Set<String> = []
                for delivered in receiver.accepted {
                    #expect(throws: Never.self) { try delivered.body.withUnsafeBytes { _ = try verifier.verify(headers: delivered.headers, body: $0, now: Date()) } }
                    let doc = try #require(JSONValue(json: delivered.body))
                    #expect(doc.value(at: "data.status")?.string == "succeeded")
                    #expect(doc.value(at: "data.result.job_name")?.string?.hasPrefix("mlhook_") == true)
                    #expect(doc.value(at: "data.result.model")?.string?.hasPrefix("demo-model:") == true)
                    #expect(doc.value(at: "data.result.status")?.string == "Completed")
                    shas.insert(doc.value(at: "data.result.commit")?.string ?? "")
                }
                #expect(shas == [first, second])
            }
            aml.shutdown()
        }
    }

    @Test func aRetriedSubmitIsTheSameJob() async throws {
        let h = try IngressHarness(config: """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: r
                when: { kind: push }
                actions: [ { submit_job: { command: "python -c pass", environment: "azureml:AzureML-sklearn-1.5@latest", ref: main, repository: "file:///nonexistent" } } ]
            """)
        defer { h.dir.remove() }
        let aml = try AMLLocal(settings: AMLLocalSettings(dataDirectory: h.dir.file("aml")), logger: Logger(label: "aml"))
        let amlApp = Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                 onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
        try await amlApp.test(.live) { _ in
            let api = HTTPAzureMLClient(settings: .local(aml))
            let code = try await api.ensureCode(name: "mlhook-code", files: [CodeFile(path: "a.py", bytes: Array("print(1)\n".utf8))])
            let body: JSONValue = ["jobType": "Command", "command": "python a.py", "codeId": .string(code),
                                   "environmentId": "azureml:AzureML-sklearn-1.5@latest"]
            let one = try await api.submitJob(name: "mlhook_job_retry", properties: body)
            let two = try await api.submitJob(name: "mlhook_job_retry", properties: body)
            #expect(one["name"] == two["name"] && one.value(at: "systemData.createdAt") == two.value(at: "systemData.createdAt"))
            let runs = try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml/runs"))
            #expect(runs.count == 1, "one job, run once")
        }
        aml.shutdown()
    }

    @Test func anActionThatNamesAWorkspaceRunsAndIsWatchedThere() async throws {
        let h = try IngressHarness(config: "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n")
        defer { h.dir.remove() }
        let (repo, sha) = try await trainingRepository(h)
        let local = try AMLLocal(settings: AMLLocalSettings(dataDirectory: h.dir.file("aml-default")), logger: Logger(label: "aml"))
        let prod = try AMLLocal(settings: AMLLocalSettings(dataDirectory: h.dir.file("aml-prod")), logger: Logger(label: "aml-prod"))
        let localApp = Application(router: local.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                   onServerRunning: { ch in try? local.bound(port: ch.localAddress?.port ?? 0) })
        let prodApp = Application(router: prod.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                  onServerRunning: { ch in try? prod.bound(port: ch.localAddress?.port ?? 0) })
        try await localApp.test(.live) { _ in
            try await prodApp.test(.live) { _ in
                let p = prod.credentials
                let job = { (ws: String) in
                    "{ submit_job: { command: \"python train.py --commit {{ after | short }} --lr 1\", environment: \"azureml:AzureML-sklearn-1.5@latest\", compute: cpu-cluster, dir: train, repository: \"file://\(repo)\", ref: \"\(sha)\", register_model: m\(ws) } }"
                }
                try h.install("""
                    sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
                    azureml:
                      workspaces:
                        prod: { tenant_id: "\(p.tenantID)", client_id: "\(p.clientID)", client_secret: { env: PROD_SECRET }, subscription_id: "\(p.subscriptionID)", resource_group: "\(p.resourceGroup)", workspace: "\(p.workspace)", authority_url: "\(prod.settings.baseURL)", arm_url: "\(prod.settings.baseURL)", api: v2 }
                    rules:
                      - name: r
                        when: { kind: push }
                        actions:
                          - \(job(""))
                          - { submit_job: { command: "python train.py --commit {{ after | short }} --lr 2", environment: "azureml:AzureML-sklearn-1.5@latest", compute: cpu-cluster, dir: train, repository: "file://\(repo)", ref: "\(sha)", register_model: mprod, workspace: prod } }
                    """)
                _ = try await h.store.append(try IngressHarness.pushEvent(branch: "main"))
                _ = try await EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger()).planPending()
                let runner = JobRunner(store: h.store, live: h.runtime.live, client: { HTTPAzureMLClient(settings: .local(local)) }, logger: h.logs.logger(),
                                       git: GitSource(cacheDirectory: h.dir.file("git-cache")),
                                       workspaces: WorkspaceClients(environment: ["PROD_SECRET": p.clientSecret]))
                while try await runner.runOne() {}
                for _ in 0..<400 {
                    _ = try await runner.watchOne()
                    if try await h.store.jobs(limit: nil, state: .watching).isEmpty { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let jobs = try await h.store.jobs(limit: nil, state: nil)
                #expect(jobs.count == 2 && jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { "\($0.state) \($0.lastError ?? "")" })")
                // Each workspace ran one job and holds the model its job registered.
                #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml-default/runs")).count == 1)
                #expect(try FileManager.default.contentsOfDirectory(atPath: h.dir.file("aml-prod/runs")).count == 1)
                #expect(try await HTTPAzureMLClient(settings: .local(prod)).modelVersions(name: "mprod", includeArchived: true).count == 1)
                #expect(try await HTTPAzureMLClient(settings: .local(local)).modelVersions(name: "m", includeArchived: true).count == 1)
                let prodJob = try #require(jobs.first { $0.parameters.contains("prod") })
                #expect(JSONValue(json: Array((prodJob.result ?? "").utf8))?["workspace"]?.string == "prod")
            }
        }
        local.shutdown()
        prod.shutdown()
    }

    /// A retried submit that the service refuses (the job exists: its first answer was lost) adopts the job when it
    /// carries this mlhook job's tag, and fails on one it did not make.
    @Test func aSubmitRefusedOnRetryAdoptsItsOwnJobOnly() async throws {
        let h = try IngressHarness(config: "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n")
        defer { h.dir.remove() }
        let (repo, sha) = try await trainingRepository(h)
        try h.install("""
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: r
                when: { kind: push }
                actions: [ { submit_job: { command: "python train.py", environment: "azureml:AzureML-sklearn-1.5@latest", dir: train, repository: "file://\(repo)", ref: "\(sha)" } } ]
            """)
        let planner = EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger())
        _ = try await h.store.append(try IngressHarness.pushEvent(branch: "main"))
        _ = try await planner.planPending()
        let fake = FakeAzureMLClient()
        // The first submit goes through but its answer is lost (503); the retry is refused because the job exists.
        fake.script("submitJob", [.failure(AzureMLError(code: .server, status: 503, message: "answer lost")),
                                  .failure(AzureMLError(code: .conflict, status: 409, message: "the job exists"))])
        let runner = JobRunner(store: h.store, live: h.runtime.live, client: { fake }, logger: h.logs.logger(), baseBackoff: 0, maxBackoff: 0,
                               git: GitSource(cacheDirectory: h.dir.file("git-cache")))
        while try await runner.runOne() {}
        let ours = try #require(try await h.store.jobs(limit: nil, state: nil).first)
        #expect(ours.state == .watching, "\(ours.lastError ?? "")")
        #expect(JSONValue(json: Array((ours.result ?? "").utf8))?["job_name"]?.string == "mlhook_\(ours.id)")
        #expect(fake.calls("submitJob").count == 2)

        // A job of that name that this mlhook job did not make (no tag of it) is not adopted: the refusal stands.
        _ = try await h.store.append(try IngressHarness.pushEvent(branch: "main", after: String(repeating: "b", count: 40)))
        _ = try await planner.planPending()
        let theirs = try #require(try await h.store.jobs(limit: nil, state: .queued).first)
        fake.setJob("mlhook_\(theirs.id)", status: "Running")
        fake.script("submitJob", [.failure(AzureMLError(code: .conflict, status: 409, message: "the job exists"))])
        while try await runner.runOne() {}
        let refused = try #require(try await h.store.job(id: theirs.id))
        #expect(refused.state == .failed && refused.lastError?.contains("the job exists") == true, "\(refused.state) \(refused.lastError ?? "")")
    }
}

