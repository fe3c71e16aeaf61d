import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import TestSupport
import Testing

/// A rule with a git `token` and no `repository` fetches the repository the event names. The token goes only to the
/// source's forge (`forge_url`, `https://github.com` for GitHub sources); a push whose `clone_url` names another host
/// is fetched without it. Before, a signed push of `acme/ml` (matching the rule) with `clone_url` pointing at any
/// listener sent it `Basic x-access-token:<token>`.
@Suite struct GitTokenDestinationTests {
    @Test func aTokenGoesOnlyToTheSourcesForge() async throws {
        let dir = try TemporaryDirectory("mlhook-token-destination")
        defer { dir.remove() }
        let sha = try await ProviderEndToEndTests().makeRepo(dir.file("repo"))
        try FileManager.default.createDirectory(atPath: dir.file("srv/acme"), withIntermediateDirectories: true)
        let git = PushToRunTests()
        _ = try await git.git(["clone", "--bare", "-q", dir.file("repo"), dir.file("srv/acme/ml.git")], in: dir.path)
        _ = try await git.git(["config", "uploadpack.allowAnySHA1InWant", "true"], in: dir.file("srv/acme/ml.git"))
        let token = "ghp_destination_\(UUID().uuidString.prefix(8))"
        // The listener a payload names: it records whether a request carried the token.
        let listener = GitHTTPServer(root: dir.file("srv"), user: "x-access-token", token: token)
        try await Application(router: listener.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { gc in
            let cloneURL = "http://127.0.0.1:\(gc.port!)/acme/ml.git"
            try Data(try Fixtures.githubPush(commit: sha, cloneURL: cloneURL)).write(to: URL(fileURLWithPath: dir.file("push.json")))
            func config(forge: String?) -> String {
                """
                server: { listen: "127.0.0.1:0" }
                store: { path: "\(dir.file(forge == nil ? "a.db" : "b.db"))" }
                azureml: { mode: local, local: { data_dir: "\(dir.file(forge == nil ? "aml-a" : "aml-b"))" } }
                sources:
                  - { name: github, type: github, secrets: [ { env: GH } ]\(forge.map { ", forge_url: \"\($0)\"" } ?? "") }
                rules:
                  - name: train
                    when: { source: github, kind: push, branches: [main] }
                    actions: [ { start_run: { experiment: t, dir: train, script: train.py, compute: cpu-cluster, token: { env: GIT_TOKEN } } } ]
                """
            }
            let env = ["GH": "token-destination-secret", "GIT_TOKEN": token]
            // No forge_url: the forge is github.com, the payload names 127.0.0.1. The fetch goes without the token.
            try config(forge: nil).write(toFile: dir.file("a.yaml"), atomically: true, encoding: .utf8)
            let a = try await ServerProcess(arguments: ["serve", "--config", dir.file("a.yaml")], environment: env, directory: dir.path)
            let refused = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("a.yaml"),
                                               "--to", "http://127.0.0.1:\(a.port)/hooks/github", "--wait", "--timeout", "60"], environment: env, directory: dir.path)
            a.signal(SIGTERM)
            #expect(refused.status != 0, "\(refused.output)")
            #expect(listener.authorized == 0 && listener.refused > 0, "the listener got the token \(listener.authorized) times")
            #expect(a.log.contains("fetching without the token") && !a.log.contains(token), "\(a.log.suffix(2000))")

            // The source's forge is that host: the token goes, and the run completes.
            try config(forge: "http://127.0.0.1:\(gc.port!)").write(toFile: dir.file("b.yaml"), atomically: true, encoding: .utf8)
            let b = try await ServerProcess(arguments: ["serve", "--config", dir.file("b.yaml")], environment: env, directory: dir.path)
            defer { b.signal(SIGTERM) }
            let sent = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("b.yaml"),
                                            "--to", "http://127.0.0.1:\(b.port)/hooks/github", "--wait", "--timeout", "60"], environment: env, directory: dir.path)
            #expect(sent.status == 0 && listener.authorized > 0, "\(sent.output)\n\(b.log.suffix(2000))")
        }
        // forge_url is checked like any destination of a token.
        try """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ], forge_url: "http://forge.example.com" } ]
            """.write(toFile: dir.file("bad.yaml"), atomically: true, encoding: .utf8)
        let check = try await runMLHook(["config", "check", "--config", dir.file("bad.yaml")], environment: ["GH": "x"], directory: dir.path)
        #expect(check.status != 0 && check.output.contains("forge_url"), "\(check.output)")
    }
}
