import Foundation
import MLHookCore
import TestSupport
import Testing

/// What `jobs retry` and a stop do to a job that starts a run, on the embedded aml-local (the quick start's).
/// Before: a retried `start_run` or `submit_job` found the run that had failed (the same name) and failed again
/// without running anything, and a run cut short by stopping `serve` was marked Failed at the next start.
@Suite struct JobRetryTests {
    static func config(_ dir: TemporaryDirectory, api: String) -> String {
        let action = api == "v1" ? "{ start_run: { experiment: retry-demo, dir: train, script: train.py, compute: cpu-cluster } }"
            : "{ submit_job: { experiment: retry-demo, dir: train, command: \"python train.py\", environment: \"azureml:AzureML-sklearn-1.5@latest\", compute: cpu-cluster } }"
        return """
            server: { listen: "127.0.0.1:0" }
            store: { path: "\(dir.file("mlhook.db"))" }
            azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
            sources:
              - { name: github, type: github, secrets: [ { env: GH_SECRET } ], git_schemes: [file] }
            rules:
              - name: retrain
                when: { source: github, kind: push, branches: [main] }
                actions: [ \(action) ]
            """
    }

    /// The ids and states of `jobs ls`.
    static func jobs(_ dir: TemporaryDirectory, _ env: [String: String]) async throws -> [(id: String, state: String)] {
        let out = try await runMLHook(["jobs", "ls", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path).output
        return out.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }.filter { $0.count > 1 }.map { ($0[0], $0[1]) }
    }

    @Test(arguments: ["v1", "v2"]) func aRetryRunsTheCodeAgainInANewRun(api: String) async throws {
        let dir = try TemporaryDirectory("mlhook-retry")
        defer { dir.remove() }
        let (repo, commits) = try await trainingRepository(in: dir, scripts: ["import sys\nprint('training ran')\nsys.exit(3)\n"])
        try Data(try Fixtures.githubPush(commit: commits[0], cloneURL: "file://\(repo)")).write(to: URL(fileURLWithPath: dir.file("push.json")))
        try Self.config(dir, api: api).write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["GH_SECRET": "retry-secret"]
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        let sent = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                        "--to", "http://127.0.0.1:\(server.port)/hooks/github", "--wait"], environment: env, directory: dir.path)
        #expect(sent.status != 0 && sent.output.contains("failed"), "\(sent.output)")
        let job = try #require(try await Self.jobs(dir, env).first)
        #expect(job.state == "failed")

        let retried = try await runMLHook(["jobs", "retry", job.id, "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        #expect(retried.status == 0, "\(retried.output)")
        // The code runs again, in a run of its own, and the job follows that run to its end.
        let ranAgain = try await eventually(timeout: .seconds(60)) {
            let state = try? await Self.jobs(dir, env).first?.state
            return (try? FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs")).count) == 2 && state == "failed"
        }
        #expect(ranAgain, "\(server.log.suffix(2000))")
        let shown = try await runMLHook(["jobs", "show", job.id, "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path).output
        #expect(shown.contains("mlhook_\(job.id)_retry1") && shown.contains("retried:         1 time"), "\(shown)")
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs")).map {
            (try? String(contentsOfFile: dir.file("aml/runs/\($0)/logs/70_driver_log.txt"), encoding: .utf8)) ?? ""
        }
        #expect(logs.filter { $0.contains("training ran") }.count == 2, "the script ran twice: \(logs)")
    }

    @Test func aRunCutShortByAStopStartsAgainAfterTheRestart() async throws {
        let dir = try TemporaryDirectory("mlhook-restart")
        defer { dir.remove() }
        // It counts its starts in outputs/ (a checkpoint survives the restart) and needs a few seconds.
        let script = """
            import os, time
            os.makedirs('outputs', exist_ok=True)
            n = int(open('outputs/starts').read()) + 1 if os.path.exists('outputs/starts') else 1
            open('outputs/starts', 'w').write(str(n))
            print('start', n, flush=True)
            time.sleep(6)
            print('finished after', n, 'starts')

            """
        let (repo, commits) = try await trainingRepository(in: dir, scripts: [script])
        try Data(try Fixtures.githubPush(commit: commits[0], cloneURL: "file://\(repo)")).write(to: URL(fileURLWithPath: dir.file("push.json")))
        try Self.config(dir, api: "v2").write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["GH_SECRET": "restart-secret"]
        let first = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        let sent = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                        "--to", "http://127.0.0.1:\(first.port)/hooks/github"], environment: env, directory: dir.path)
        #expect(sent.status == 0, "\(sent.output)")
        // Once the script has started, the service is stopped (gracefully: the embedded runs stop with it).
        let log = { () -> String in
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs"))) ?? []
            return runs.first.flatMap { try? String(contentsOfFile: dir.file("aml/runs/\($0)/logs/70_driver_log.txt"), encoding: .utf8) } ?? ""
        }
        #expect(try await eventually(timeout: .seconds(60)) { log().contains("start 1") }, "\(first.log.suffix(2000))")
        first.signal(SIGTERM)
        #expect(try await first.waitForExit() == 0)

        let second = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        defer { second.signal(SIGTERM) }
        #expect(try await eventually(timeout: .seconds(60)) { (try? await Self.jobs(dir, env).first?.state) == "succeeded" },
                "\(second.log.suffix(2000))")
        let text = log()
        #expect(text.contains("it starts again (restart 1 of 3)") && text.contains("finished after 2 starts"), "\(text)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs")).count) == 1, "the same run, started again")
    }

    /// `mlhook jobs cancel` (here through the admin API, `--server`) on a job whose run is executing: the run is
    /// canceled in Azure ML (aml-local) and the job ends failed, saying an operator canceled it.
    @Test func jobsCancelStopsTheRunAndEndsTheJob() async throws {
        let dir = try TemporaryDirectory("mlhook-cancel")
        defer { dir.remove() }
        let (repo, commits) = try await trainingRepository(in: dir, scripts: ["import time\nprint('started', flush=True)\ntime.sleep(120)\n"])
        try Data(try Fixtures.githubPush(commit: commits[0], cloneURL: "file://\(repo)")).write(to: URL(fileURLWithPath: dir.file("push.json")))
        try Self.config(dir, api: "v2").write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["GH_SECRET": "cancel-secret", "MLHOOK_ADMIN_TOKEN": String(repeating: "c", count: 40)]
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        let base = "http://127.0.0.1:\(server.port)"
        _ = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                 "--to", base + "/hooks/github"], environment: env, directory: dir.path)
        let watching = try await eventually(timeout: .seconds(60)) { (try? await Self.jobs(dir, env).first?.state) == "watching" }
        #expect(watching, "\(server.log.suffix(2000))")
        let job = try #require(try await Self.jobs(dir, env).first)

        let canceled = try await runMLHook(["jobs", "cancel", job.id, "--server", base], environment: env, directory: dir.path)
        #expect(canceled.status == 0 && canceled.output.contains("\(job.id): its run is being canceled"), "\(canceled.output)")
        let ended = try await eventually(timeout: .seconds(30)) { (try? await Self.jobs(dir, env).first?.state) == "failed" }
        #expect(ended, "\(server.log.suffix(2000))")
        let shown = try await runMLHook(["jobs", "show", job.id, "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path).output
        #expect(shown.contains("last error:      canceled by an operator (mlhook jobs cancel)") && shown.contains("\"status\":\"Canceled\""), "\(shown)")
        let again = try await runMLHook(["jobs", "cancel", job.id, "--server", base], environment: env, directory: dir.path)
        #expect(again.status == 1 && again.output.contains("job \(job.id) is failed: nothing to cancel"), "\(again.output)")
        let none = try await runMLHook(["jobs", "cancel", "job_nosuch", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        #expect(none.status == 1 && none.output.contains("no job job_nosuch"), "\(none.output)")
    }
}
