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
}
