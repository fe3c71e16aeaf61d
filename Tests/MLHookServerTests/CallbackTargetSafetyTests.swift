import Foundation
import MLHookCore
@testable import MLHookServer
@testable import Store
import Testing

/// A GitHub commit status carries a token: it goes only to an https API base, and the repository and commit
/// from the payload cannot change the path it is posted to.
@Suite struct CallbackTargetSafetyTests {
    func config(_ apiBase: String) throws -> MLHookConfig {
        try MLHookConfig.parse(yaml: """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: r
                when: { kind: push }
                actions: [ { delete_model: { id: "m:1" } } ]
                callback: [ { github_status: { token: { env: GH_TOKEN }, api_base: "\(apiBase)" } } ]
            """, file: "s.yaml").config
    }

    @Test func theAPIBaseMustBeHTTPS() throws {
        #expect(throws: ConfigError.self) { try config("http://github.example.com/api/v3") }
        #expect(throws: ConfigError.self) { try config("ftp://github.example.com") }
        #expect(throws: Never.self) { try config("https://github.example.com/api/v3/") }
        #expect(throws: Never.self) { try config("http://127.0.0.1:8080") }
    }

    @Test func aRepositoryOrCommitThatWouldChangeThePathMakesNoStatus() throws {
        let rule = try #require(try config("https://api.github.com").rules.first)
        let job = JobRecord(id: "job_1", idempotencyKey: "k", eventID: "evt_1", rule: "r", actionIndex: 0, action: "delete_model",
                            parameters: "{}", state: .succeeded, attempts: 1, maxAttempts: 3, createdAt: Date())
        func statuses(repo: String, sha: String) -> [NewCallback] {
            var e = NormalizedEvent(source: "github", kind: .push, providerEvent: "push", deliveryID: "d", payload: .null)
            e.repository = .init(fullName: repo, cloneURL: nil)
            e.after = sha
            let stored = StoredEvent(summary: EventSummary(id: "evt_1", source: "github", kind: "push", deliveryID: "d", state: .planned,
                                                           receivedAt: Date(), bodyBytes: 0), headers: [:], contentType: "application/json",
                                     body: [], explanation: nil, plan: nil)
            return CallbackFormatter.callbacks(for: job, rule: rule, event: .init(stored: stored, normalized: e), state: .succeeded,
                                               result: nil, error: nil, phase: .final, now: Date())
        }
        let sha = String(repeating: "a", count: 40)
        #expect(statuses(repo: "octo/hello", sha: sha).map(\.url) == ["https://api.github.com/repos/octo/hello/statuses/\(sha)"])
        #expect(statuses(repo: "octo/../../orgs/x", sha: sha).isEmpty)
        #expect(statuses(repo: "octo/hello?x=1", sha: sha).isEmpty)
        #expect(statuses(repo: "octo/hello", sha: "../../x").isEmpty)
    }

    /// A Slack response_url from a source that checks no signature could name any address (a blind SSRF): only
    /// Slack's own https hosts get an answer then. A signed command's response_url was sent by Slack.
    @Test func anUnsignedCommandIsAnsweredOnlyOnSlacksHosts() throws {
        let config = try MLHookConfig.parse(yaml: """
            sources: [ { name: slack, type: slack, insecure: true } ]
            rules:
              - name: r
                when: { source: slack, command: "/aml scale {compute} {nodes:int}" }
                actions: [ { scale_compute: { name: "{{ args.compute }}", max_nodes: "{{ args.nodes }}" } } ]
                callback: [ { slack: {} } ]
            """, file: "s.yaml").config
        let rule = try #require(config.rules.first)
        let job = JobRecord(id: "job_1", idempotencyKey: "k", eventID: "evt_1", rule: "r", actionIndex: 0, action: "scale_compute",
                            parameters: "{}", state: .succeeded, attempts: 1, maxAttempts: 3, createdAt: Date())
        func answers(_ responseURL: String, signed: Bool) -> [String] {
            var e = NormalizedEvent(source: "slack", kind: .command, providerEvent: "/aml", deliveryID: "d", payload: .null)
            e.command = CommandInfo(name: "/aml", text: "scale gpu 2", responseURL: responseURL)
            let stored = StoredEvent(summary: EventSummary(id: "evt_1", source: "slack", kind: "/aml", deliveryID: "d", state: .planned,
                                                           receivedAt: Date(), bodyBytes: 0), headers: [:],
                                     contentType: "application/x-www-form-urlencoded", body: [], explanation: nil, plan: nil)
            return CallbackFormatter.callbacks(for: job, rule: rule, event: .init(stored: stored, normalized: e, signed: signed),
                                               state: .succeeded, result: nil, error: nil, phase: .final, now: Date()).map(\.url)
        }
        let slack = "https://hooks.slack.com/commands/T1/1/abc"
        #expect(answers(slack, signed: false) == [slack])
        for other in ["http://127.0.0.1:8080/admin", "https://169.254.169.254/latest", "https://hooks.slack.com.evil.example/x",
                      "http://hooks.slack.com/commands/T1", "https://hooks.slack.com:8443/x", "file:///etc/passwd"] {
            #expect(answers(other, signed: false).isEmpty, "\(other)")
        }
        #expect(answers("http://127.0.0.1:8080/r", signed: true) == ["http://127.0.0.1:8080/r"])
        #expect(answers("file:///etc/passwd", signed: true).isEmpty)
    }
}
