import Foundation
import MLHookCore
import HummingbirdTesting
import Hummingbird
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The README's first command: `mlhook serve` on embedded defaults shows the whole loop with the bundled sample.
@Suite struct QuickStartTests {
    /// A port that was free a moment ago (the sample's callback URL needs the real port, not 0).
    func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    @Test func embeddedDefaultsRunTheSampleFromPushToVerifiedCallback() async throws {
        let dir = try TemporaryDirectory("mlhook-quickstart")
        defer { dir.remove() }
        let server = try await ServerProcess(arguments: ["serve"], environment: ["MLHOOK_LISTEN": "127.0.0.1:\(freePort())"], directory: dir.path)
        defer { server.signal(SIGTERM) }
        #expect(try await eventually { server.log.contains("sample: done.") }, "\(server.log.suffix(2000))")
        let log = server.log
        for step in ["sample: sending a signed GitHub push of mlhook/sample@", "sample: 202 ", "sample: event planned",
                     "sample: job sample-train submit_job: succeeded", "signature verified): job succeeded, Azure ML job mlhook_job_",
                     " Completed, model sample-model:1", "sample: callback delivered"] {
            #expect(log.contains(step), "missing: \(step)")
        }
        #expect(FileManager.default.fileExists(atPath: dir.file(".mlhook/secrets/github")))
        #expect(FileManager.default.fileExists(atPath: dir.file(".mlhook/aml-local/credentials.json")))
        let secret = try String(contentsOfFile: dir.file(".mlhook/secrets/github"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!log.contains(secret), "the generated secret is never logged")
        // The README's `echo … >>` adds a line of its own: the script ends with a newline.
        #expect(try String(contentsOfFile: dir.file(".mlhook/sample-repo/train/train.py"), encoding: .utf8).hasSuffix("\n"))

        // A second start does not send the sample again: it says how the first ended and how to push a change.
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
        let again = try await ServerProcess(arguments: ["serve"], environment: ["MLHOOK_LISTEN": "127.0.0.1:\(freePort())"], directory: dir.path)
        defer { again.signal(SIGTERM) }
        #expect(try await eventually { again.log.contains("sample: to push a change") }, "\(again.log.suffix(2000))")
        #expect(again.log.contains("sample: sent at an earlier start (evt_") && again.log.contains("job sample-train submit_job: succeeded); not sent again."),
                "\(again.log.suffix(2000))")
        #expect(!again.log.contains("sample: sending"), "not sent again")
    }

    /// The README's quick start, its commands as printed (the test's binary for `.build/release/mlhook`): after the
    /// sample, a change of one's own, committed and sent with `mlhook send github push --wait`, trains and exits 0.
    @Test func theReadmesOwnPushTrainsAndSendWaitsForIt() async throws {
        let dir = try TemporaryDirectory("mlhook-quickstart-push")
        defer { dir.remove() }
        let listen = ["MLHOOK_LISTEN": "127.0.0.1:\(freePort())"]
        let server = try await ServerProcess(arguments: ["serve"], environment: listen, directory: dir.path)
        defer { server.signal(SIGTERM) }
        #expect(try await eventually { server.log.contains("sample: done.") }, "\(server.log.suffix(2000))")
        let readme = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md"),
                                encoding: .utf8)
        let block = try #require(readme.range(of: "To push a change of your own").flatMap { readme[$0.upperBound...].range(of: "```sh\n") }
            .flatMap { start in readme[start.upperBound...].range(of: "```").map { String(readme[start.upperBound..<$0.lowerBound]) } })
        var outputs: [String] = []
        for line in block.split(separator: "\n").map(String.init) {
            let command = line.components(separatedBy: "  #").first!.trimmingCharacters(in: .whitespaces)
            if command.hasPrefix(".build/release/mlhook ") {
                let arguments = command.dropFirst(".build/release/mlhook ".count).split(separator: " ").map(String.init)
                let run = try await runMLHook(arguments, environment: listen, directory: dir.path)
                #expect(run.status == 0, "\(command): \(run.output)")
                outputs.append(run.output)
            } else {
                let r = try await runProcessAsync("/bin/sh", ["-c", command], directory: dir.path)
                #expect(r.status == 0, "\(command): \(r.output)")
            }
        }
        // A repository of one's own with train/train.py, on the same embedded defaults.
        let own = dir.file("my-model")
        _ = try await ProviderEndToEndTests().makeRepo(own, script: "print('my own model')\n")
        let mine = try await runMLHook(["send", "github", "push", "--repo", own, "--wait"], environment: listen, directory: dir.path)
        #expect(mine.status == 0 && mine.output.contains("submit_job: succeeded"), "\(mine.output)")
        let sent = try #require(outputs.first)
        #expect(sent.contains("202 ") && sent.contains("submit_job: succeeded"), "\(sent)")
        #expect(outputs.last?.components(separatedBy: "\n").filter { $0.contains("github") }.count == 2, "the sample's push and ours (before my-model's)")
    }
}

/// `MLHOOK_NO_SAMPLE=1` skips the sample's push, not the callback its rule makes: a push of one's own still reaches a
/// delivered callback and `send --wait` exits 0 (before, the callback went to a 404 and --wait ran out its time, 124).
@Suite struct NoSampleTests {
    @Test func withoutTheSampleAPushOfOnesOwnStillCallsBack() async throws {
        let dir = try TemporaryDirectory("mlhook-no-sample")
        defer { dir.remove() }
        let env = ["MLHOOK_LISTEN": "127.0.0.1:\(QuickStartTests().freePort())", "MLHOOK_NO_SAMPLE": "1"]
        let server = try await ServerProcess(arguments: ["serve"], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        let own = dir.file("my-model")
        _ = try await ProviderEndToEndTests().makeRepo(own, script: "print('my own model')\n")
        let sent = try await runMLHook(["send", "github", "push", "--repo", own, "--wait", "--timeout", "60"], environment: env, directory: dir.path)
        #expect(sent.status == 0 && sent.output.contains("submit_job: succeeded"), "\(sent.output)\n--- server ---\n\(server.log.suffix(1500))")
        #expect(server.log.contains("sample: callback received (signature verified)"), "\(server.log.suffix(1500))")
        #expect(!server.log.contains("sample: sending"), "the sample's own push is skipped")
    }
}

/// `mlhook send` has a built-in payload for every provider: Standard Webhooks with its type, generic with its
/// configured headers, a Slack command with its text; and says what is built in when asked for something else.
@Suite struct SendBuiltInPayloadTests {
    @Test func everyProviderHasABuiltInPayload() async throws {
        let dir = try TemporaryDirectory("mlhook-send-builtin")
        defer { dir.remove() }
        let port = QuickStartTests().freePort()
        try """
            server: { listen: "127.0.0.1:\(port)" }
            store: { path: "\(dir.file("m.db"))" }
            azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
            sources:
              - { name: standard, type: standard, secrets: [ { env: SW } ] }
              - { name: github, type: github, secrets: [ { env: GH } ] }
              - { name: slack, type: slack, secrets: [ { env: SL } ] }
              - name: generic
                type: generic
                secrets: [ { env: GN } ]
                generic: { header: X-Signature, prefix: "sha256=", timestamp_header: X-Timestamp, delivery_header: X-Request-Id, event_header: X-Event }
            """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["SW": IngressHarness.standardKey, "SL": "slack-signing-secret", "GN": "generic-secret", "GH": "gh"]
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        for (provider, event, extra) in [("standard", "invoice.paid", [String]()), ("generic", "build.done", []), ("slack", "/aml", ["--text", "scale gpu 2"])] {
            let sent = try await runMLHook(["send", provider, event, "--config", dir.file("mlhook.yaml")] + extra, environment: env, directory: dir.path)
            #expect(sent.status == 0 && (sent.output.hasPrefix("202 ") || sent.output.hasPrefix("200 ")), "\(provider): \(sent.output)")
        }
        let listed = try await runMLHook(["events", "ls", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path).output
        #expect(listed.contains("standard\tinvoice.paid") && listed.contains("generic\tbuild.done") && listed.contains("slack\t/aml"), "\(listed)")
        let unknown = try await runMLHook(["send", "github", "workflow_run", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        #expect(unknown.status == 2 && unknown.output.contains("no built-in payload") && unknown.output.contains("--payload"), "\(unknown.output)")
    }

    /// A built-in push names the commit before (its parent, not 40 zeros) and says what the commit added, modified
    /// and removed (before: every path was "added"), for GitHub, GitLab and Bitbucket.
    @Test func aBuiltInPushNamesTheParentAndWhatChanged() async throws {
        let dir = try TemporaryDirectory("mlhook-send-changes")
        defer { dir.remove() }
        let repo = dir.file("repo")
        let git = PushToRunTests()
        try FileManager.default.createDirectory(atPath: repo + "/train", withIntermediateDirectories: true)
        try "print(1)\n".write(toFile: repo + "/train/train.py", atomically: true, encoding: .utf8)
        try "old\n".write(toFile: repo + "/old.txt", atomically: true, encoding: .utf8)
        _ = try await git.git(["init", "-q", "-b", "main"], in: repo)
        _ = try await git.git(["add", "."], in: repo)
        _ = try await git.git(["-c", "user.email=t@x", "-c", "user.name=T", "commit", "-q", "-m", "one"], in: repo)
        let first = try await git.git(["rev-parse", "HEAD"], in: repo)
        try "print(2)\n".write(toFile: repo + "/train/train.py", atomically: true, encoding: .utf8)
        try "new\n".write(toFile: repo + "/new.txt", atomically: true, encoding: .utf8)
        _ = try await git.git(["rm", "-q", "old.txt"], in: repo)
        _ = try await git.git(["add", "."], in: repo)
        _ = try await git.git(["-c", "user.email=t@x", "-c", "user.name=T", "commit", "-q", "-m", "two"], in: repo)
        let second = try await git.git(["rev-parse", "HEAD"], in: repo)
        try """
            sources:
              - { name: github, type: github, secrets: [ { env: GH } ] }
              - { name: gitlab, type: gitlab, secrets: [ { env: GH } ] }
              - { name: bitbucket, type: bitbucket, secrets: [ { env: GH } ] }
            """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let receiver = Receiver(failFirst: 0)
        try await Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { r in
            for (provider, event) in [("github", "push"), ("gitlab", "Push Hook"), ("bitbucket", "repo:push")] {
                let sent = try await runMLHook(["send", provider, event, "--repo", repo, "--config", dir.file("mlhook.yaml"), "--to", "http://127.0.0.1:\(r.port!)/\(provider)"],
                                               environment: ["GH": "a-secret-for-the-test"], directory: dir.path)
                #expect(sent.status == 0, "\(provider): \(sent.output)")
            }
        }
        let bodies = Dictionary(uniqueKeysWithValues: receiver.accepted.map { ($0.path, JSONValue(json: $0.body) ?? nil) })
        for provider in ["github", "gitlab"] {
            let p = try #require(bodies["/\(provider)"])
            #expect(p["before"]?.string == first && p["after"]?.string == second, "\(provider): \(p)")
            let c = p.value(at: "commits")?.array?.first
            #expect(c?["added"] == ["new.txt"] && c?["modified"] == ["train/train.py"] && c?["removed"] == ["old.txt"], "\(provider): \(p)")
        }
        let change = bodies["/bitbucket"]?.value(at: "push.changes")?.array?.first
        #expect(change?.value(at: "old.target.hash")?.string == first && change?.value(at: "new.target.hash")?.string == second, "\(String(describing: change))")
    }
}
