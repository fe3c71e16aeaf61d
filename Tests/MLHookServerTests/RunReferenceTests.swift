import Foundation
import Logging
import MLHookCore
@testable import MLHookServer
@testable import Store
import TestSupport
import Testing

/// The run a job started travels as a typed `RunReference`: a v2 command job is named in the Slack message and
/// the pending GitHub status, and linked on `/ui`, as a v1 run is. Before, every reader looked for `run_id`,
/// which a `submit_job` result does not have: no link, no run in Slack, and a pending status reading "run  started".
@Suite struct RunReferenceTests {
    static let studio = "http://127.0.0.1:9/studio/runs/0b5d4a34-0000-4000-8000-000000000000?sig=abc"

    /// What `submit_job` stores, made by the action's own output type.
    static func v2Result(status: String? = nil) -> JSONValue {
        let run = RunReference(api: .v2, experiment: "churn", id: "mlhook_job_1", studioURL: studio)
        let out = SubmitJob.Output(run: run, commit: String(repeating: "a", count: 40), codeID: "code/1", registerModel: nil, modelPath: "model").json
        return status.map { out.setting("status", .string($0)) } ?? out
    }

    static let job = JobRecord(id: "job_1", idempotencyKey: "k", eventID: "evt_1", rule: "r", actionIndex: 0, action: "submit_job",
                               parameters: "{}", state: .watching, attempts: 1, maxAttempts: 3, createdAt: Date())

    static func event(_ e: NormalizedEvent, kind: String) -> ActionContext.LoadedEvent {
        let stored = StoredEvent(summary: EventSummary(id: "evt_1", source: e.source, kind: kind, deliveryID: "d", state: .planned,
                                                       receivedAt: Date(), bodyBytes: 0), headers: [:], contentType: "application/json",
                                 body: [], explanation: nil, plan: nil)
        return .init(stored: stored, normalized: e, signed: true)
    }

    @Test func aV2JobIsNamedInTheSlackMessageAndThePendingStatus() throws {
        let config = try MLHookConfig.parse(yaml: """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] }, { name: slack, type: slack, secrets: [ { env: SL } ] } ]
            rules:
              - name: r
                when: { kind: push }
                actions: [ { delete_model: { id: "m:1" } } ]
                callback: [ { github_status: { token: { env: GH_TOKEN } } }, { slack: {} } ]
            """, file: "r.yaml").config
        let rule = try #require(config.rules.first)
        var push = NormalizedEvent(source: "github", kind: .push, providerEvent: "push", deliveryID: "d", payload: .null)
        push.repository = .init(fullName: "octo/churn", cloneURL: nil)
        push.after = String(repeating: "a", count: 40)
        let pending = CallbackFormatter.callbacks(for: Self.job, rule: rule, event: Self.event(push, kind: "push"), state: .watching,
                                                  result: Self.v2Result(), error: nil, phase: .pending, now: Date())
        let status = try #require(pending.first { $0.kind == "github_status" })
        #expect(JSONValue(json: Array(status.body.utf8))?["description"]?.string == "job mlhook_job_1 started", "\(status.body)")

        var command = NormalizedEvent(source: "slack", kind: .command, providerEvent: "/aml", deliveryID: "d", payload: .null)
        command.command = CommandInfo(name: "/aml", text: "train churn", responseURL: "https://hooks.slack.com/commands/T1/1/x")
        let final = CallbackFormatter.callbacks(for: Self.job, rule: rule, event: Self.event(command, kind: "/aml"), state: .succeeded,
                                                result: Self.v2Result(status: "Completed"), error: nil, phase: .final, now: Date())
        let slack = try #require(final.first { $0.kind == "slack" })
        #expect(JSONValue(json: Array(slack.body.utf8))?["text"]?.string?.contains("(job mlhook_job_1, Completed)") == true, "\(slack.body)")
    }

    @Test func aV2JobIsLinkedOnTheStatusPage() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let page = StatusPage(store: h.store, live: h.runtime.live, logger: Logger(label: "test"))
        var job = Self.job
        job.result = Self.v2Result(status: "Completed").text
        #expect(page.run(job).contains("<a href=\"\(StatusPage.escape(Self.studio))\">mlhook_job_1</a> (Completed)"), "\(page.run(job))")
        // A v1 run keeps its workspace link, and a result stored before `run` existed is still read.
        var linked = page
        linked.runLink = { experiment, id in "https://ml.azure.com/runs/\(id)?exp=\(experiment)" }
        job.result = #"{"experiment":"churn","run_id":"mlhook_job_2","commit":"abc","status":"Failed"}"#
        #expect(linked.run(job).contains("<a href=\"https://ml.azure.com/runs/mlhook_job_2?exp=churn\">mlhook_job_2</a> (Failed)"), "\(linked.run(job))")
        #expect(RunReference(resultText: job.result) == RunReference(api: .v1, experiment: "churn", id: "mlhook_job_2"))
    }

    /// A reload that removes the source and the rule after an event was planned does not change what its job
    /// reports: its callbacks go where the rule said when the event was planned, with the push's repository and
    /// commit. Before, the job looked its rule up again (gone: no callbacks at all) and normalized the body again
    /// (its source gone: no provenance).
    @Test func aReloadAfterPlanningDoesNotChangeAPlannedJobsCallbacks() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try h.install("""
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: cleanup
                when: { source: github, kind: push, branches: [main] }
                actions: [ { delete_model: { id: "m:1" } } ]
                callback:
                  - url: { url: "http://127.0.0.1:9/cb", secret: { env: CB } }
                  - github_status: { token: { env: GH_TOKEN } }
            """)
        let push = try IngressHarness.pushEvent(branch: "main")
        _ = try await h.store.append(push)
        #expect(try await EventPlanner(store: h.store, live: h.runtime.live, logger: h.logs.logger()).planPending() == 1)
        // The source and its rule go away before a worker takes the job.
        try h.install("""
            sources: [ { name: gitlab, type: gitlab, secrets: [ { env: GL } ] } ]
            rules:
              - name: other
                when: { source: gitlab, kind: push }
                actions: [ { delete_model: { id: "m:2" } } ]
            """)
        let fake = FakeAzureMLClient()
        let runner = JobRunner(store: h.store, live: h.runtime.live, client: { fake }, logger: h.logs.logger(), baseBackoff: 0, maxBackoff: 0)
        while try await runner.runOne() {}
        let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
        #expect(job.state == .succeeded)
        let callbacks = try await h.store.callbacks(CallbackQuery(jobID: job.id))
        #expect(Set(callbacks.map(\.kind)) == ["url", "github_status"], "\(callbacks.map(\.kind))")
        let body = try #require(JSONValue(json: Array((callbacks.first { $0.kind == "url" }?.body ?? "").utf8)))
        #expect(body.value(at: "data.provenance.repository")?.string == "Codertocat/Hello-World" && body.value(at: "data.event.source")?.string == "github",
                "\(body)")
        #expect(callbacks.first { $0.kind == "github_status" }?.url.hasPrefix("https://api.github.com/repos/Codertocat/Hello-World/statuses/") == true)
        #expect(callbacks.first { $0.kind == "url" }?.credential == .env("CB"))
    }
}
