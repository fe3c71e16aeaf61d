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
import Synchronization
import TestSupport
import Testing

/// The shipped examples that run on events without a commit, end to end: the file as shipped (secrets and
/// addresses pointed at loopback), a real signed request, a real git fetch, a real run on aml-local.
@Suite struct ShippedExampleTests {
    static func example(_ name: String) throws -> String {
        try String(contentsOf: ExampleFiles.dir.appendingPathComponent(name), encoding: .utf8)
    }

    /// A repository with `train.py` at its root that prints its arguments; served bare under `srv/{name}.git`.
    static func repo(_ dir: TemporaryDirectory, name: String, folder: String = ".") async throws -> String {
        let path = dir.file("work-\(name)")
        try FileManager.default.createDirectory(atPath: path + "/" + folder, withIntermediateDirectories: true)
        try "import sys\nprint('trained with', sys.argv[1:])\n".write(toFile: path + "/" + folder + "/train.py", atomically: true, encoding: .utf8)
        let git = PushToRunTests()
        _ = try await git.git(["init", "-q", "-b", "main"], in: path)
        _ = try await git.git(["add", "."], in: path)
        _ = try await git.git(["-c", "user.email=e@x", "-c", "user.name=E", "commit", "-q", "-m", "train"], in: path)
        try FileManager.default.createDirectory(atPath: dir.file("srv/" + name).components(separatedBy: "/").dropLast().joined(separator: "/"),
                                                withIntermediateDirectories: true)
        _ = try await git.git(["clone", "--bare", "-q", path, dir.file("srv/\(name).git")], in: dir.path)
        _ = try await git.git(["config", "uploadpack.allowAnySHA1InWant", "true"], in: dir.file("srv/\(name).git"))
        return try await git.git(["rev-parse", "HEAD"], in: path)
    }

    /// A run's driver log.
    static func runLog(_ client: HTTPAzureMLClient, experiment: String, runID: String) async throws -> String {
        let details = try await client.runDetails(experiment: experiment, runID: runID)
        let log = try await client.download(details["logFiles"]?.object["azureml-logs/70_driver_log.txt"]?.string ?? "")
        return String(decoding: log, as: UTF8.self)
    }

    /// Runs every queued job and follows every run to its end, then delivers the callbacks.
    func drain(_ h: IngressHarness, _ runner: JobRunner) async throws {
        while try await runner.runOne() {}
        for _ in 0..<600 where try await !h.store.jobs(limit: nil, state: .watching).isEmpty {
            _ = try await runner.watchOne()
            try await Task.sleep(for: .milliseconds(50))
        }
        _ = try await CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.logs.logger(), schedule: [0]).deliverDue()
    }

    @Test func slackChatOpsRunsTheConfiguredBranchAndAnswersInSlack() async throws {
        let dir = try TemporaryDirectory("mlhook-example-slack")
        defer { dir.remove() }
        let sha = try await Self.repo(dir, name: "acme/ml")
        let slack = Receiver(failFirst: 0)
        try await Application(router: slack.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { sc in
            let yaml = try Self.example("slack-chatops.yaml")
                .replacingOccurrences(of: "env: SLACK_SIGNING_SECRET", with: "env: SL")
                .replacingOccurrences(of: "https://github.com/acme/ml.git", with: "file://" + dir.file("srv/acme/ml.git"))
            let h = try IngressHarness(config: yaml)
            defer { h.dir.remove() }
            let answer = try await h.postSlackCommand("command=%2Faml&text=run+demo+--epochs+3&user_id=U2CERLKJA&response_url="
                + FormURLEncoded.escape("http://127.0.0.1:\(sc.port!)/commands/T1/1/x"))
            #expect(answer.status == .ok, "\(answer.body)")
            try await ChatOpsAndStatusTests().withAML(h) { runner, client in
                try await drain(h, runner)
                let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
                #expect(job.state == .succeeded, "\(job.lastError ?? "")")
                let result = JSONValue(json: Array((job.result ?? "").utf8))
                #expect(result?["commit"]?.string == sha, "the configured branch's head was fetched")
                #expect(result?["status"]?.string == "Completed")
                let log = try await Self.runLog(client, experiment: "demo", runID: result?["run_id"]?.string ?? "")
                #expect(log.contains("trained with ['--epochs', '3']"), "the rest of the command, split into words: \(log)")
            }
            let text = JSONValue(json: try #require(slack.accepted.first).body)?["text"]?.string ?? ""
            #expect(text.contains("/aml run demo --epochs 3") && text.contains("succeeded"), "\(text)")
        }
    }

    @Test func aPullRequestCommentRetrainsItsHeadResolvedThroughTheGitHubAPI() async throws {
        let dir = try TemporaryDirectory("mlhook-example-pr")
        defer { dir.remove() }
        let sha = try await Self.repo(dir, name: "octo/ml")
        let token = "ghs_example_\(UUID().uuidString.prefix(8))"
        try token.write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
        let gitServer = GitHTTPServer(root: dir.file("srv"), user: "x-access-token", token: token)
        let github = FakeGitHubAPI(token: token)
        try await Application(router: gitServer.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { gc in
            github.pulls["octo/ml#7"] = ["head": ["sha": .string(sha), "repo": ["clone_url": .string("http://127.0.0.1:\(gc.port!)/octo/ml.git")]]]
            try await Application(router: github.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { api in
                let base = "http://127.0.0.1:\(api.port!)"
                let yaml = try Self.example("pr-comment-retrain.yaml")
                    .replacingOccurrences(of: "secrets: [ { env: GITHUB_WEBHOOK_SECRET } ]",
                                          with: "secrets: [ { env: GH } ]\n    forge_url: \"http://127.0.0.1:\(gc.port!)\"")
                    .replacingOccurrences(of: "{ env: GITHUB_TOKEN }", with: "{ file: \"\(dir.file("token"))\" }")
                    .replacingOccurrences(of: "pull_request: \"{{ payload.issue.number }}\"",
                                          with: "pull_request: \"{{ payload.issue.number }}\"\n          github_api: \"\(base)\"")
                    .replacingOccurrences(of: "github_status: { token: { file: \"\(dir.file("token"))\" } }",
                                          with: "github_status: { token: { file: \"\(dir.file("token"))\" }, api_base: \"\(base)\" }")
                let h = try IngressHarness(config: yaml)
                defer { h.dir.remove() }
                var payload = try #require(JSONValue(json: try Fixtures.webhook("github", "issue_comment.created.octokit.json")))
                payload = payload.setting("issue", (payload["issue"] ?? [:]).setting("number", 7)
                                            .setting("pull_request", ["url": .string("\(base)/repos/octo/ml/pulls/7")]))
                    .setting("comment", (payload["comment"] ?? [:]).setting("body", "/retrain quick"))
                    .setting("sender", ["login": "octocat"])
                    .setting("repository", (payload["repository"] ?? [:]).setting("full_name", "octo/ml"))
                let body = Array(payload.text.utf8)
                var headers: HTTPFields = [.contentType: "application/json", HTTPField.Name("X-GitHub-Event")!: "issue_comment",
                                           HTTPField.Name("X-GitHub-Delivery")!: "pr-comment-1"]
                for s in try WebhookSigner.github(secret: h.secret("GH"), body: body) { headers[HTTPField.Name(s.name)!] = s.value }
                let signed = headers
                let status = try await h.app.test(.router) { client in
                    try await client.execute(uri: "/hooks/github", method: .post, headers: signed, body: ByteBuffer(bytes: body)) { $0.status }
                }
                #expect(status == .accepted)
                try await ChatOpsAndStatusTests().withAML(h) { runner, client in
                    try await drain(h, runner)
                    let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
                    #expect(job.state == .succeeded, "\(job.lastError ?? "")")
                    let result = JSONValue(json: Array((job.result ?? "").utf8))
                    #expect(result?["commit"]?.string == sha, "the pull request's head was fetched")
                    let log = try await Self.runLog(client, experiment: "pr-7", runID: result?["run_id"]?.string ?? "")
                    #expect(log.contains("'--mode', 'quick'"), "\(log)")
                }
                #expect(gitServer.authorized > 0, "fetched over https-or-loopback with the token")
                #expect(github.pullReads == 1)
                let statuses = github.statuses
                #expect(statuses.map(\.sha).allSatisfy { $0 == sha } && statuses.last?.state == "success", "\(statuses)")
            }
        }
    }
}

extension ShippedExampleTests {
    /// Posts `body` to `/hooks/{source}` signed as its provider signs it.
    static func post(_ h: IngressHarness, source: String, event: String, delivery: String, body: [UInt8]) async throws -> HTTPResponse.Status {
        var headers: HTTPFields = [.contentType: "application/json"]
        switch source {
        case "gitlab":
            headers[HTTPField.Name("X-Gitlab-Event")!] = event
            headers[HTTPField.Name("X-Gitlab-Event-UUID")!] = delivery
            headers[HTTPField.Name("X-Gitlab-Token")!] = h.secret("GL").text
        default:
            headers[HTTPField.Name("X-GitHub-Event")!] = event
            headers[HTTPField.Name("X-GitHub-Delivery")!] = delivery
            for s in try WebhookSigner.github(secret: h.secret("GH"), body: body) { headers[HTTPField.Name(s.name)!] = s.value }
        }
        let signed = headers
        return try await h.app.test(.router) { client in
            try await client.execute(uri: "/hooks/\(source)", method: .post, headers: signed, body: ByteBuffer(bytes: body)) { $0.status }
        }
    }

    @Test func githubPushToTrainRunsTheCommitAndReportsToCIAndGitHub() async throws {
        let dir = try TemporaryDirectory("mlhook-example-push")
        defer { dir.remove() }
        let sha = try await Self.repo(dir, name: "octo/ml", folder: "train")
        try "callback-secret".write(toFile: dir.file("cb"), atomically: true, encoding: .utf8)
        try "ghs_status".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
        let ci = Receiver(failFirst: 0)
        let github = FakeGitHubAPI(token: "ghs_status")
        try await Application(router: ci.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { cc in
            try await Application(router: github.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { api in
                let yaml = try Self.example("github-push-to-train.yaml")
                    .replacingOccurrences(of: "server: { listen: \"0.0.0.0:8080\" }\n", with: "")
                    .replacingOccurrences(of: "store: { path: \"/var/lib/mlhook/mlhook.db\" }\n", with: "")
                    .replacingOccurrences(of: "env: GITHUB_WEBHOOK_SECRET", with: "env: GH")
                    .replacingOccurrences(of: "https://ci.example.com/mlhook", with: "http://127.0.0.1:\(cc.port!)/mlhook")
                    .replacingOccurrences(of: "{ env: CALLBACK_SECRET }", with: "{ file: \"\(dir.file("cb"))\" }")
                    .replacingOccurrences(of: "{ env: GITHUB_TOKEN }, context:", with: "{ file: \"\(dir.file("token"))\" }, api_base: \"http://127.0.0.1:\(api.port!)\", context:")
                let h = try IngressHarness(config: yaml)
                defer { h.dir.remove() }
                let push: JSONValue = ["ref": "refs/heads/main", "after": .string(sha), "before": .string(String(repeating: "0", count: 40)),
                                       "repository": ["name": "ml", "full_name": "octo/ml", "clone_url": .string("file://" + dir.file("srv/octo/ml.git"))],
                                       "commits": [["id": .string(sha), "added": ["train/train.py"], "modified": [], "removed": []]],
                                       "pusher": ["name": "octocat"], "sender": ["login": "octocat"]]
                #expect(try await Self.post(h, source: "github", event: "push", delivery: "push-1", body: Array(push.text.utf8)) == .accepted)
                try await ChatOpsAndStatusTests().withAML(h) { runner, client in
                    try await drain(h, runner)
                    let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
                    #expect(job.state == .succeeded, "\(job.lastError ?? "")")
                    let result = JSONValue(json: Array((job.result ?? "").utf8))
                    let log = try await Self.runLog(client, experiment: "ml", runID: result?["run_id"]?.string ?? "")
                    #expect(log.contains("'--commit', '\(sha.prefix(7))', '--branch', 'main'"), "\(log)")
                }
                #expect(JSONValue(json: try #require(ci.accepted.first).body)?.value(at: "data.status")?.string == "succeeded")
                #expect(github.statuses.last.map { $0.sha == sha && $0.state == "success" } == true, "\(github.statuses)")
            }
        }
    }

    @Test func gitlabPushTrainsAndATagRegistersTheModel() async throws {
        let dir = try TemporaryDirectory("mlhook-example-gitlab")
        defer { dir.remove() }
        let sha = try await Self.repo(dir, name: "group/ml", folder: "model")
        try "callback-secret".write(toFile: dir.file("cb"), atomically: true, encoding: .utf8)
        let hook = Receiver(failFirst: 0)
        try await Application(router: hook.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { rc in
            let yaml = try Self.example("gitlab-push-to-train.yaml")
                .replacingOccurrences(of: "env: GITLAB_WEBHOOK_TOKEN", with: "env: GL")
                .replacingOccurrences(of: "compute: gpu-cluster", with: "compute: cpu-cluster")  // aml-local seeds cpu-cluster only
                .replacingOccurrences(of: "https://hooks.example.com/ml", with: "http://127.0.0.1:\(rc.port!)/ml")
                .replacingOccurrences(of: "/run/secrets/callback", with: dir.file("cb"))
            let h = try IngressHarness(config: yaml)
            defer { h.dir.remove() }
            let push = try Fixtures.gitlabPush(commit: sha, cloneURL: "file://" + dir.file("srv/group/ml.git"), changed: ["model/train.py"])
            #expect(try await Self.post(h, source: "gitlab", event: "Push Hook", delivery: "gl-push-1", body: push) == .accepted)
            var tag = try #require(JSONValue(json: try Fixtures.webhook("gitlab", "tag_push.go-gitlab.json")))
            tag = tag.setting("ref", "refs/tags/v1.2.0").setting("after", .string(sha)).setting("checkout_sha", .string(sha))
            #expect(try await Self.post(h, source: "gitlab", event: "Tag Push Hook", delivery: "gl-tag-1", body: Array(tag.text.utf8)) == .accepted)
            try await ChatOpsAndStatusTests().withAML(h) { runner, client in
                try await drain(h, runner)
                let jobs = try await h.store.jobs(limit: nil, state: nil)
                #expect(jobs.count == 2 && jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map { ($0.action, $0.state, $0.lastError ?? "") })")
                let models = try await client.models(name: nil)
                #expect(models.contains { $0["url"]?.string?.hasSuffix("/v1.2.0/model.pkl") == true
                    || $0.value(at: "properties.url")?.string?.hasSuffix("/v1.2.0/model.pkl") == true || $0.text.contains("v1.2.0/model.pkl") }, "\(models)")
            }
            #expect(hook.accepted.count == 1, "the train rule's callback")
        }
    }

    @Test func nightlyRetrainFiresOnItsScheduleAndCallsBack() async throws {
        let dir = try TemporaryDirectory("mlhook-example-nightly")
        defer { dir.remove() }
        let sha = try await Self.repo(dir, name: "acme/ml", folder: "train")
        try "callback-secret".write(toFile: dir.file("cb"), atomically: true, encoding: .utf8)
        let hook = Receiver(failFirst: 0)
        try await Application(router: hook.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { rc in
            let yaml = try Self.example("nightly-retrain.yaml")
                .replacingOccurrences(of: "env: GITHUB_WEBHOOK_SECRET", with: "env: GH")
                .replacingOccurrences(of: "https://github.com/acme/ml.git", with: "file://" + dir.file("srv/acme/ml.git"))
                .replacingOccurrences(of: "https://ml.example.com/nightly", with: "http://127.0.0.1:\(rc.port!)/nightly")
                .replacingOccurrences(of: "{ env: CALLBACK_SECRET }", with: "{ file: \"\(dir.file("cb"))\" }")
            let h = try IngressHarness(config: yaml)
            defer { h.dir.remove() }
            // An hour after 03:00 in Berlin: the tick is within catch_up_seconds and fires once.
            let start = try Date("2026-11-22T03:00:00Z", strategy: .iso8601)  // 04:00 in Berlin (CET)
            try await Scheduler(store: h.store, live: h.runtime.live, logger: h.logs.logger()).catchUp(at: start)
            #expect(try await EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger()).planPending() == 1)
            try await ChatOpsAndStatusTests().withAML(h) { runner, client in
                try await drain(h, runner)
                let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
                #expect(job.state == .succeeded, "\(job.lastError ?? "")")
                let result = JSONValue(json: Array((job.result ?? "").utf8))
                #expect(result?["commit"]?.string == sha)
                let log = try await Self.runLog(client, experiment: "nightly", runID: result?["run_id"]?.string ?? "")
                #expect(log.contains("'--tick', '2026-11-22T02:00:00Z'"), "\(log)")
            }
            #expect(hook.accepted.count == 1)
        }
    }

    @Test func aPublishedReleaseRegistersTheModelAndAPrereleaseDoesNot() async throws {
        let yaml = try Self.example("register-on-release.yaml").replacingOccurrences(of: "env: GITHUB_WEBHOOK_SECRET", with: "env: GH")
        let h = try IngressHarness(config: yaml)
        defer { h.dir.remove() }
        let release = try #require(JSONValue(json: try Fixtures.webhook("github", "release.published.octokit.json")))
        let pre = release.setting("release", (release["release"] ?? [:]).setting("prerelease", true))
        #expect(try await Self.post(h, source: "github", event: "release", delivery: "rel-1", body: Array(release.text.utf8)) == .accepted)
        #expect(try await Self.post(h, source: "github", event: "release", delivery: "rel-2", body: Array(pre.text.utf8)) == .accepted)
        try await ChatOpsAndStatusTests().withAML(h) { runner, client in
            try await drain(h, runner)
            let jobs = try await h.store.jobs(limit: nil, state: nil)
            #expect(jobs.count == 1 && jobs.first?.state == .succeeded, "\(jobs.map { ($0.state, $0.lastError ?? "") })")
            let tag = release.value(at: "release.tag_name")?.string ?? "?"
            let models = try await client.models(name: nil)
            #expect(models.contains { $0.text.contains("/releases/download/\(tag)/model.pkl") }, "\(models)")
        }
    }
}

/// Every file in config/examples.
enum ExampleFiles {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/examples").standardized
}

/// GitHub's REST API as far as the examples use it: pull requests read and commit statuses posted, both with the
/// bearer token.
final class FakeGitHubAPI: Sendable {
    let token: String
    private let state = Mutex<(pulls: [String: JSONValue], reads: Int, statuses: [(sha: String, state: String)], outages: Int)>(([:], 0, [], 0))
    /// The next this many pull request reads are answered 503.
    var outages: Int {
        get { state.withLock { $0.outages } }
        set { state.withLock { $0.outages = newValue } }
    }
    var pulls: [String: JSONValue] {
        get { state.withLock { $0.pulls } }
        set { state.withLock { $0.pulls = newValue } }
    }
    var pullReads: Int { state.withLock { $0.reads } }
    var statuses: [(sha: String, state: String)] { state.withLock { $0.statuses } }

    init(token: String) { self.token = token }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/repos/:owner/:name/pulls/:number") { req, ctx -> Response in
            guard req.headers[.authorization] == "Bearer \(self.token)" else { return Response(status: .unauthorized) }
            let key = "\(ctx.parameters.get("owner") ?? "")/\(ctx.parameters.get("name") ?? "")#\(ctx.parameters.get("number") ?? "")"
            let (pull, down) = self.state.withLock { s -> (JSONValue?, Bool) in
                s.reads += 1
                if s.outages > 0 { s.outages -= 1; return (nil, true) }
                return (s.pulls[key], false)
            }
            if down { return Response(status: .serviceUnavailable) }
            guard let pull else { return Response(status: .notFound) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: pull.text)))
        }
        router.post("/repos/:owner/:name/statuses/:sha") { req, ctx -> Response in
            guard req.headers[.authorization] == "Bearer \(self.token)" else { return Response(status: .unauthorized) }
            let body = JSONValue(json: Array(try await req.body.collect(upTo: 1 << 16).readableBytesView))
            self.state.withLock { $0.statuses.append((ctx.parameters.get("sha") ?? "", body?["state"]?.string ?? "")) }
            return Response(status: .created)
        }
        return router
    }
}
