import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import Signing
import TestSupport
import Testing

/// kill -9 of `mlhook serve` while its run (v1 `start_run`) or command job (v2 `submit_job`) is executing (on a
/// separate aml-local, as the cloud would keep it): after a restart the run is watched to its end, exactly one run
/// exists for the commit, one model version (v2), and one callback arrives.
@Suite struct KillMidRunTests {
    @Test(arguments: ["v1", "v2"]) func theWatcherResumesAfterKill9(api: String) async throws {
        let dir = try TemporaryDirectory("mlhook-kill")
        defer { dir.remove() }
        let aml = try await AMLLocalProcess.start(in: dir)
        defer { aml.process.signal(SIGTERM) }

        // Long enough to be seen running (and killed) on a loaded machine.
        let (repo, commits) = try await trainingRepository(in: dir, scripts: ["import time\ntime.sleep(8)\nprint('survived')\n"])
        let sha = commits[0]
        try Data(try Fixtures.githubPush(commit: sha, cloneURL: "file://\(repo)")).write(to: URL(fileURLWithPath: dir.file("push.json")))

        let receiver = Receiver(failFirst: 0)
        let rApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await rApp.test(.live) { rc in
            try """
                server: { listen: "127.0.0.1:0" }
                store: { path: "\(dir.file("mlhook.db"))" }
                \(aml.cloudYAML(secretEnv: "AML_SECRET"))
                sources:
                  - { name: github, type: github, secrets: [ { env: GH_SECRET } ], git_schemes: [file] }
                rules:
                  - name: retrain
                    when: { source: github, kind: push, branches: [main] }
                    actions: [ \(api == "v1" ? "{ start_run: { experiment: kill-demo, dir: train, script: train.py, compute: cpu-cluster } }"
                                  : "{ submit_job: { experiment: kill-demo, dir: train, command: \"python train.py\", environment: \"azureml:AzureML-sklearn-1.5@latest\", compute: cpu-cluster, register_model: killed-model } }") ]
                    callback: [ { url: { url: "http://127.0.0.1:\(rc.port!)/cb", secret: { env: CB } } } ]
                """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
            let env = ["GH_SECRET": "kill-secret", "AML_SECRET": aml.credential("client_secret"), "CB": "whsec_" + ByteEncoding.base64(Array(repeating: 3, count: 32))]
            let first = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            let sent = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                                 "--to", "http://127.0.0.1:\(first.port)/hooks/github"], environment: env, directory: dir.path)
            #expect(sent.status == 0 && sent.output.hasPrefix("202"))
            // Wait until the run is executing, then kill -9 the service.
            #expect(try await eventually(timeout: .seconds(30)) {
                (try? await runMLHook(["jobs", "ls", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path).output.contains("\twatching\t")) ?? false
            })
            first.signal(SIGKILL)
            #expect(try await first.waitForExit() != 0)
            #expect(receiver.attempts == 0, "the run has not finished yet")

            // The restarted service resumes watching from the database.
            let second = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
            defer { second.signal(SIGTERM) }
            #expect(try await eventually(timeout: .seconds(60)) { !receiver.accepted.isEmpty })
            let doc = try #require(JSONValue(json: receiver.accepted.first?.body ?? []))
            #expect(doc.value(at: "data.status")?.string == "succeeded" && doc.value(at: "data.result.status")?.string == "Completed")
            #expect(doc.value(at: "data.provenance.commit")?.string == sha)
            if api == "v2" {
                #expect(doc.value(at: "data.result.job_name")?.string?.hasPrefix("mlhook_job_") == true)
                #expect(doc.value(at: "data.result.model")?.string == "killed-model:1", "\(doc)")
            }
            try await Task.sleep(for: .seconds(1))
            #expect(receiver.attempts == 1, "one callback")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs")).count == 1, "exactly one run for the commit")
        }
    }
}
