import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import Signing
import TestSupport
import Testing

/// Real processes on loopback, beyond GitHub: `mlhook serve` with the embedded aml-local, `mlhook send … --wait`,
/// a git server over HTTP that wants a token, python3 running the script, receivers that fail half the time.
@Suite struct ProviderEndToEndTests {
    /// A repository with `train/train.py` committed on main. - Returns: the commit.
    func makeRepo(_ path: String, script: String = "import sys\nprint('trained', sys.argv[1:])\n") async throws -> String {
        try FileManager.default.createDirectory(atPath: path + "/train", withIntermediateDirectories: true)
        try script.write(toFile: path + "/train/train.py", atomically: true, encoding: .utf8)
        let git = PushToRunTests()
        _ = try await git.git(["init", "-q", "-b", "main"], in: path)
        _ = try await git.git(["add", "."], in: path)
        _ = try await git.git(["-c", "user.email=e@x", "-c", "user.name=E", "commit", "-q", "-m", "train"], in: path)
        return try await git.git(["rev-parse", "HEAD"], in: path)
    }

    @Test func aGitLabPushFetchedWithATokenBecomesACompletedRunAndARegisteredModel() async throws {
        let dir = try TemporaryDirectory("mlhook-gitlab")
        defer { dir.remove() }
        let sha = try await makeRepo(dir.file("repo"))
        // Served as a private project: git over HTTP, Basic auth with the token.
        try FileManager.default.createDirectory(atPath: dir.file("srv/ml"), withIntermediateDirectories: true)
        let git = PushToRunTests()
        _ = try await git.git(["clone", "--bare", "-q", dir.file("repo"), dir.file("srv/ml/demo.git")], in: dir.path)
        _ = try await git.git(["config", "uploadpack.allowAnySHA1InWant", "true"], in: dir.file("srv/ml/demo.git"))
        let gitToken = "glpat-e2e-token-\(UUID().uuidString.prefix(8))"
        let gitServer = GitHTTPServer(root: dir.file("srv"), user: "oauth2", token: gitToken)
        let gitApp = Application(router: gitServer.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        let receiver = Receiver(failingEveryOther: ())
        let receiverApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await gitApp.test(.live) { gc in
            // Without the token the project is not readable.
            let anonymous = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(gc.port!)/ml/demo.git/info/refs?service=git-upload-pack"),
                                                                timeout: .seconds(30))  // room for a loaded machine
            #expect(anonymous.status.code == 401)
            try await receiverApp.test(.live) { rc in
                let cloneURL = "http://127.0.0.1:\(gc.port!)/ml/demo.git"
                try Data(try Fixtures.gitlabPush(commit: sha, cloneURL: cloneURL)).write(to: URL(fileURLWithPath: dir.file("push.json")))
                let callbackSecret = "whsec_" + ByteEncoding.base64(Array(repeating: 7, count: 32))
                try """
                    server: { listen: "127.0.0.1:0" }
                    store: { path: "\(dir.file("mlhook.db"))" }
                    azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
                    callbacks: { retry_schedule_seconds: [1, 1, 1, 1] }
                    sources:
                      - { name: gitlab, type: gitlab, secrets: [ { env: GL_SECRET } ], forge_url: "http://127.0.0.1:\(gc.port!)" }
                    rules:
                      - name: gitlab-train
                        when: { source: gitlab, kind: push, branches: [main] }
                        actions:
                          - start_run: { experiment: "{{ repository.name | slug }}", dir: train, script: train.py, arguments: ["--commit", "{{ after | short }}"],
                                         compute: cpu-cluster, token: { env: GIT_TOKEN }, git_user: oauth2 }
                          - register_model: { name: "demo-{{ after | short }}", url: "https://models.example.com/demo.pkl", tags: { team: ml } }
                        callback:
                          - url: { url: "http://127.0.0.1:\(rc.port!)/mlhook", secret: { env: CALLBACK_SECRET } }
                    """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
                let env = ["GL_SECRET": "gitlab-e2e-secret", "GIT_TOKEN": gitToken, "CALLBACK_SECRET": callbackSecret]
                let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
                defer { server.signal(SIGTERM) }
                let sent = try await runMLHook(["send", "gitlab", "Push Hook", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                                     "--to", "http://127.0.0.1:\(server.port)/hooks/gitlab", "--wait"], environment: env, directory: dir.path)
                #expect(sent.status == 0, "\(sent.output)\n--- server ---\n\(server.log.suffix(3000))")
                #expect(sent.output.contains(": succeeded run mlhook_job_"), "\(sent.output)")
                #expect(gitServer.authorized > 0, "the commit was fetched over HTTP with the token")

                // Both jobs' callbacks arrive, each after a failed first attempt, each signed.
                #expect(try await eventually { receiver.accepted.count == 2 }, "\(receiver.attempts) attempts")
                let verifier = try StandardWebhooksVerifier(secrets: [WebhookSecret(callbackSecret)])
                var byAction: [String: JSONValue] = [:]
                for d in receiver.accepted {
                    #expect(throws: Never.self) { try d.body.withUnsafeBytes { _ = try verifier.verify(headers: d.headers, body: $0, now: Date()) } }
                    let doc = try #require(JSONValue(json: d.body))
                    byAction[doc.value(at: "data.action")?.string ?? ""] = doc
                    #expect(doc.value(at: "data.provenance.commit")?.string == sha && doc.value(at: "data.event.source")?.string == "gitlab")
                }
                #expect(byAction["start_run"]?.value(at: "data.result.status")?.string == "Completed")
                let modelID = try #require(byAction["register_model"]?.value(at: "data.result.id")?.string)
                #expect(modelID == "demo-\(sha.prefix(7)):1")
                #expect(receiver.attempts >= 3, "the receiver failed every other attempt; delivery retried")

                // The model carries its provenance.
                let shown = try await runMLHook(["aml", "models", "show", modelID, "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
                let model = try #require(JSONValue(json: Array(shown.output.utf8)), "\(shown.output)")
                func tag(_ k: String) -> String? { model.value(at: "kvTags.\(k)")?.string }
                #expect(tag("team") == "ml" && tag("mlhook_rule") == "gitlab-train")
                #expect(tag("mlhook_commit") == sha && tag("mlhook_repository") == "mike/diaspora")
                #expect(tag("mlhook_delivery_id")?.isEmpty == false)

                for secret in [gitToken, "gitlab-e2e-secret", callbackSecret] {
                    #expect(!server.log.contains(secret) && !sent.output.contains(secret), "no secret in any output")
                }
            }
        }
    }

    @Test func slackCommandsScaleAComputeAndRegisterAndDeleteAModel() async throws {
        let dir = try TemporaryDirectory("mlhook-slack")
        defer { dir.remove() }
        let slack = Receiver(failingEveryOther: ())
        let slackApp = Application(router: slack.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await slackApp.test(.live) { sc in
            try """
                server: { listen: "127.0.0.1:0" }
                store: { path: "\(dir.file("mlhook.db"))" }
                azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
                callbacks: { retry_schedule_seconds: [1, 1, 1, 1] }
                sources:
                  - { name: slack, type: slack, secrets: [ { env: SLACK_SIGNING_SECRET } ] }
                rules:
                  - name: chatops-scale
                    when: { source: slack, command: "/aml scale {compute} {nodes:int}", users: [U2CERLKJA] }
                    actions: [ { scale_compute: { name: "{{ args.compute }}", max_nodes: "{{ args.nodes }}" } } ]
                    callback: [ { slack: {} } ]
                  - name: chatops-register
                    when: { source: slack, command: "/aml register {name}", users: [U2CERLKJA] }
                    actions: [ { register_model: { name: "{{ args.name }}", url: "https://models.example.com/{{ args.name }}.pkl", tags: { via: slack } } } ]
                    callback: [ { slack: {} } ]
                  - name: chatops-delete
                    when: { source: slack, command: "/aml delete-model {id}", users: [U2CERLKJA] }
                    actions: [ { delete_model: { id: "{{ args.id }}" } } ]
                    callback: [ { slack: {} } ]
                """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
            let env = ["SLACK_SIGNING_SECRET": "slack-e2e-signing-secret"]
            let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            defer { server.signal(SIGTERM) }
            func command(_ text: String) async throws -> String {
                let form = "command=%2Faml&text=\(FormURLEncoded.escape(text))&user_id=U2CERLKJA&user_name=ops&response_url="
                    + FormURLEncoded.escape("http://127.0.0.1:\(sc.port!)/slack/response")
                try form.write(toFile: dir.file("form.txt"), atomically: true, encoding: .utf8)
                let sent = try await runMLHook(["send", "slack", "command", "--payload", dir.file("form.txt"), "--config", dir.file("mlhook.yaml"),
                                                     "--to", "http://127.0.0.1:\(server.port)/hooks/slack", "--wait"], environment: env, directory: dir.path)
                #expect(sent.status == 0, "\(sent.output)\n--- server ---\n\(server.log.suffix(3000))")
                return sent.output
            }
            func aml(_ args: [String]) async throws -> String {
                try await runMLHook(["aml"] + args + ["--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path).output
            }

            let scaled = try await command("scale cpu-cluster 3")
            #expect(scaled.contains("scale_compute: succeeded") && scaled.contains(": delivered"), "\(scaled)")
            #expect(try await aml(["computes", "ls"]).contains("cpu-cluster\tSucceeded\t0\t0\t3"))

            _ = try await command("register churn-model")
            #expect(try await aml(["models", "ls"]).contains("churn-model:1\t"))
            let model = JSONValue(json: Array(try await aml(["models", "show", "churn-model:1"]).utf8))
            #expect(model?.value(at: "kvTags.via")?.string == "slack" && model?.value(at: "kvTags.mlhook_rule")?.string == "chatops-register")

            _ = try await command("delete-model churn-model:1")
            #expect(!(try await aml(["models", "ls"]).contains("churn-model:1")))

            // Every command's answer reached the response_url, though it failed every other attempt.
            let texts = slack.accepted.compactMap { JSONValue(json: $0.body)?["text"]?.string }
            #expect(texts.count == 3, "\(texts)")
            #expect(texts.contains { $0.contains("/aml scale cpu-cluster 3") && $0.contains("scale_compute succeeded") })
            #expect(texts.contains { $0.contains("/aml register churn-model") && $0.contains("register_model succeeded") })
            #expect(texts.contains { $0.contains("/aml delete-model churn-model:1") && $0.contains("delete_model succeeded") })
            #expect(slack.attempts == 6, "each response failed once, then was delivered")
            #expect(!server.log.contains("slack-e2e-signing-secret"))
        }
    }
}
