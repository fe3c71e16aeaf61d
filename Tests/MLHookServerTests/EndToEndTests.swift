import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import Signing
import TestSupport
import Testing

/// Real processes on loopback: `mlhook serve` with the embedded aml-local, `mlhook send … --wait`, a git repo in
/// a temp dir, python3 running the training script, and a callback receiver that verifies the signature.
@Suite struct EndToEndTests {
    @Test func sendAPushAndReceiveASignedCompletedCallback() async throws {
        let dir = try TemporaryDirectory("mlhook-e2e")
        defer { dir.remove() }
        // The repository and its commit.
        let repo = dir.file("repo")
        try FileManager.default.createDirectory(atPath: repo + "/train", withIntermediateDirectories: true)
        try "import sys\nprint('e2e training', sys.argv[1:])\n".write(toFile: repo + "/train/train.py", atomically: true, encoding: .utf8)
        for args in [["init", "-q", "-b", "main"], ["add", "."], ["-c", "user.email=e@x", "-c", "user.name=E", "commit", "-q", "-m", "t"]] {
            _ = try await runGit(args, in: repo)
        }
        let sha = try await runGit(["rev-parse", "HEAD"], in: repo)
        try Data(try Fixtures.githubPush(commit: sha, cloneURL: "file://\(repo)")).write(to: URL(fileURLWithPath: dir.file("push.json")))

        let receiver = Receiver(failFirst: 0)
        let receiverApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await receiverApp.test(.live) { rc in
            let callbackSecret = "whsec_" + ByteEncoding.base64(Array(repeating: 9, count: 32))
            try """
                server: { listen: "127.0.0.1:0" }
                store: { path: "\(dir.file("mlhook.db"))" }
                azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
                sources:
                  - { name: github, type: github, secrets: [ { env: GH_SECRET } ], git_schemes: [file] }
                rules:
                  - name: retrain-on-main
                    when: { source: github, kind: push, branches: [main] }
                    actions:
                      - start_run: { experiment: "{{ repository.name | slug }}", dir: train, script: train.py, arguments: ["--commit", "{{ after | short }}"], compute: cpu-cluster }
                    callback:
                      - url: { url: "http://127.0.0.1:\(rc.port!)/mlhook", secret: { env: CALLBACK_SECRET } }
                """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
            let env = ["GH_SECRET": "e2e-github-secret", "CALLBACK_SECRET": callbackSecret]
            let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            defer { server.signal(SIGTERM) }
            let sent = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                                 "--to", "http://127.0.0.1:\(server.port)/hooks/github", "--wait"], environment: env, directory: dir.path)
            #expect(sent.status == 0, "\(sent.output)\n--- server ---\n\(server.log.suffix(3000))")
            #expect(sent.output.contains("202 "))
            #expect(sent.output.contains(": succeeded run mlhook_job_"), "\(sent.output)")
            #expect(sent.output.contains(": delivered"))

            let delivery = try #require(receiver.accepted.first)
            let verifier = try StandardWebhooksVerifier(secrets: [WebhookSecret(callbackSecret)])
            #expect(throws: Never.self) { try delivery.body.withUnsafeBytes { _ = try verifier.verify(headers: delivery.headers, body: $0, now: Date()) } }
            let doc = try #require(JSONValue(json: delivery.body))
            #expect(doc.value(at: "data.result.status")?.string == "Completed" && doc.value(at: "data.provenance.commit")?.string == sha)
            #expect(doc.value(at: "data.result.run_id")?.string?.hasPrefix("mlhook_job_") == true)

            // The operator's views.
            let callbacks = try await runMLHook(["callbacks", "ls", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            #expect(callbacks.output.contains("\tdelivered\t1\t200\t"))
            let jobs = try await runMLHook(["jobs", "ls", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            let jobID = String(jobs.output.split(separator: "\t").first ?? "")
            #expect(jobs.output.contains("\tsucceeded\tretrain-on-main#1\tstart_run\t"))
            let retry = try await runMLHook(["jobs", "retry", jobID, "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            #expect(retry.status == 1 && retry.output.contains("job \(jobID) is succeeded: only a failed or dead job can be retried"),
                    "only failed or dead jobs are retried, and it says why: \(retry.output)")
            let none = try await runMLHook(["jobs", "retry", "job_nosuch", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            #expect(none.status == 1 && none.output.contains("no job job_nosuch"), "\(none.output)")
            #expect(!server.log.contains("e2e-github-secret") && !server.log.contains(callbackSecret), "no secret in the logs")
        }
    }

    func runGit(_ args: [String], in dir: String) async throws -> String { try await PushToRunTests().git(args, in: dir) }
}
