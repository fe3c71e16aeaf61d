import Foundation
import MLHookCore
import MLHookServer
import Store
import TestSupport
import Testing

/// Planning creates jobs in the same transaction; the same commit makes one job however it arrives.
@Suite struct JobCreationTests {
    static let config = """
        sources:
          - { name: github, type: github, secrets: [ { env: GH } ] }
          - { name: mirror, type: github, secrets: [ { env: GH } ] }
        rules:
          - name: retrain
            when: { kind: push, branches: [main] }
            max_attempts: 7
            actions:
              - start_run: { experiment: "{{ repository.name | slug }}", script: train.py, compute: cpu-cluster, arguments: ["{{ after | short }}"] }
              - scale_compute: { name: cpu-cluster, max_nodes: 2 }
        """

    @Test func thePlannerCreatesOneJobPerActionAndTheSameCommitOnce() async throws {
        let h = try IngressHarness(config: Self.config)
        defer { h.dir.remove() }
        let planner = EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger())
        // The same push: once, redelivered with a new delivery id, and through a second hook.
        let first = try IngressHarness.pushEvent(branch: "main")
        let again = try IngressHarness.pushEvent(branch: "main")
        var mirrored = try IngressHarness.pushEvent(branch: "main")
        mirrored.source = "mirror"
        for e in [first, again, mirrored] { _ = try await h.store.append(e) }
        let ignored = try IngressHarness.pushEvent(branch: "dev")
        _ = try await h.store.append(ignored)
        _ = try await planner.planPending()

        let jobs = try await h.store.jobs(limit: nil, state: nil)
        #expect(jobs.count == 2, "two actions, one commit: \(jobs.map(\.idempotencyKey))")
        #expect(Set(jobs.map(\.action)) == ["start_run", "scale_compute"])
        #expect(jobs.allSatisfy { $0.state == .queued && $0.maxAttempts == 7 && $0.eventID == first.id })
        let run = try #require(jobs.first { $0.action == "start_run" })
        #expect(run.idempotencyKey.hasPrefix("retrain#1@git:codertocat/hello-world@"))
        #expect(run.parameters == #"{"arguments":["6113728"],"compute":"cpu-cluster","experiment":"hello-world","script":"train.py"}"#)
        let decoded = try JSONDecoder().decode([String: ParameterValue].self, from: Data(run.parameters.utf8))
        #expect(decoded["arguments"] == .list(["6113728"]) && decoded["experiment"] == .string("hello-world"))
        for e in [first, again, mirrored] {
            #expect(try await h.store.event(id: e.id)?.summary.state == .planned, "every copy is planned; only the jobs are shared")
        }
        #expect(try await h.store.event(id: ignored.id)?.summary.state == .ignored)

        // The CLI reads them.
        let path = h.dir.file("cli.yaml")
        try "store: { path: \"\(h.dir.file("mlhook.db"))\" }\nsources:\n  - { name: github, type: github, insecure: true }\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let listed = try await runMLHook(["jobs", "ls", "--config", path], directory: h.dir.path)
        #expect(listed.status == 0 && listed.output.split(separator: "\n").count == 2 && listed.output.contains("retrain#1\tstart_run"))
        // On a terminal: a header row and aligned columns; --json: one array.
        let terminal = try await runMLHook(["jobs", "ls", "--config", path], directory: h.dir.path, terminal: true)
        let lines = terminal.output.split(separator: "\n").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(lines.first?.hasPrefix("ID") == true && lines.first?.contains("RULE#ACTION") == true, "\(terminal.output)")
        #expect(!terminal.output.contains("\t") && lines.count == 3, "\(terminal.output)")
        let json = try await runMLHook(["jobs", "ls", "--json", "--config", path], directory: h.dir.path)
        let array = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
        #expect(array?.count == 2)
        let none = try await runMLHook(["callbacks", "ls", "--json", "--config", path], directory: h.dir.path)
        #expect(none.output.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "an empty list is an empty array")
        let shown = try await runMLHook(["jobs", "show", run.id, "--config", path], directory: h.dir.path)
        #expect(shown.output.contains("idempotency key: \(run.idempotencyKey)"))
        // One numbering: the key, the list and the job's page all call the first action of the rule #1.
        #expect(run.idempotencyKey.contains("#1@") && shown.output.contains("(action 1: start_run)"))
        // Filters the admin API had and the CLI lacked: --kind and --state (a wrong state is a usage error).
        let ignoredOnly = try await runMLHook(["events", "ls", "--state", "ignored", "--kind", "push", "--config", path], directory: h.dir.path)
        #expect(ignoredOnly.status == 0 && ignoredOnly.output.split(separator: "\n").count == 1 && ignoredOnly.output.hasPrefix(ignored.id), "\(ignoredOnly.output)")
        #expect(try await runMLHook(["events", "ls", "--kind", "ping", "--config", path], directory: h.dir.path).output.isEmpty)
        let badState = try await runMLHook(["events", "ls", "--state", "bogus", "--config", path], directory: h.dir.path)
        #expect(badState.status == 2 && badState.output.contains("--state must be one of received, planned, ignored, done, failed"), "\(badState.output)")
        // --json on the show commands: one object each, for scripts.
        let jobJSON = try #require(JSONValue(json: Array(try await runMLHook(["jobs", "show", run.id, "--json", "--config", path], directory: h.dir.path).output.utf8)))
        #expect(jobJSON.value(at: "job.id")?.string == run.id && jobJSON["attempts"]?.array != nil, "\(jobJSON)")
        let eventJSON = try #require(JSONValue(json: Array(try await runMLHook(["events", "show", first.id, "--json", "--config", path], directory: h.dir.path).output.utf8)))
        #expect(eventJSON["id"]?.string == first.id && eventJSON.value(at: "body.ref")?.string == "refs/heads/main" && eventJSON["plan"]?.array?.count == 2,
                "\(eventJSON)")
        // The body as sent: a URL keeps its slashes (no \/ escapes).
        let event = try await runMLHook(["events", "show", first.id, "--config", path], directory: h.dir.path)
        #expect(event.output.contains("\"https://github.com/") && !event.output.contains("\\/"), "\(event.output.suffix(400))")
    }
}
