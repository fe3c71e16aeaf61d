import Foundation
import MLHookCore
import TestSupport
import Testing

/// `mlhook send --wait` as scripts use it: its exit status says how the event ended, a delivery that creates
/// nothing new says so and returns at once, and --timeout bounds the wait.
@Suite struct SendWaitTests {
    @Test func sendWaitExitsWithTheOutcomeAndNeverHangs() async throws {
        let dir = try TemporaryDirectory("mlhook-send-wait")
        defer { dir.remove() }
        try """
            server: { listen: "127.0.0.1:0" }
            store: { path: "\(dir.file("m.db"))" }
            azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
            jobs: { retry_base_seconds: 60 }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: scale-missing
                when: { kind: push, branches: [fails] }
                actions: [ { scale_compute: { name: no-such-compute, max_nodes: 2 } } ]
              - name: score-unreachable
                when: { kind: push, branches: [slow] }
                actions: [ { score: { uri: "http://127.0.0.1:9/score", key: { env: K }, data: "[1]" } } ]
            """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["GH": "gh-secret", "K": "scoring-key", "MLHOOK_NO_SAMPLE": "1"]
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        func payload(_ branch: String) throws -> String {
            let path = dir.file("\(branch).json")
            let body = String(decoding: try Fixtures.webhook("github", "push.new-branch-1-commit.octokit.json"), as: UTF8.self)
                .replacingOccurrences(of: "\"refs/heads/master\"", with: "\"refs/heads/\(branch)\"")
            try body.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        func send(_ branch: String, delivery: String, _ extra: [String] = []) async throws -> (status: Int32, output: String) {
            try await runMLHook(["send", "github", "push", "--payload", try payload(branch), "--config", dir.file("mlhook.yaml"),
                                      "--to", "http://127.0.0.1:\(server.port)/hooks/github", "--delivery", delivery, "--wait"] + extra,
                                     environment: env, directory: dir.path)
        }
        // A job that fails: exit 1, saying so.
        let failed = try await send("fails", delivery: "d-1")
        #expect(failed.status == 1 && failed.output.contains("scale_compute: failed") && failed.output.contains("1 job(s) failed"), "\(failed.output)")
        // The same delivery again: a duplicate, said at once, exit 0.
        let duplicate = try await send("fails", delivery: "d-1")
        #expect(duplicate.status == 0 && duplicate.output.contains("duplicate delivery"), "\(duplicate.output)")
        // The same commit under a new delivery id: planned, but no new job.
        let again = try await send("fails", delivery: "d-2")
        #expect(again.status == 0 && again.output.contains("nothing new runs"), "\(again.output)")
        // A job that keeps being retried: --timeout ends the wait with 124.
        let started = ContinuousClock.now
        let slow = try await send("slow", delivery: "d-3", ["--timeout", "2"])
        #expect(slow.status == 124 && slow.output.contains("--timeout"), "\(slow.output)")
        #expect(ContinuousClock.now - started < .seconds(30))
    }
}
