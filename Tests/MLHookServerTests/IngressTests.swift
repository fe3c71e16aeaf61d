import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MLHookCore
import NIOCore
import Signing
import Store
import TestSupport
import Testing

/// Signed deliveries of real payloads from every provider are stored with their kind and delivery id.
@Suite struct IngressAcceptanceTests {
    struct Case: Sendable, CustomStringConvertible {
        let source: String
        let fixture: (String, String)
        let kind: String
        let delivery: String
        let headers: @Sendable (IngressHarness, [UInt8]) throws -> [(String, String)]
        var description: String { "\(source) \(fixture.1)" }
    }

    static let cases: [Case] = [
        Case(source: "github", fixture: ("github", "push.new-branch-1-commit.octokit.json"), kind: "push", delivery: "gh-d1") { h, b in
            try WebhookSigner.github(secret: h.secret("GH"), body: b).map { ($0.name, $0.value) }
                + [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "gh-d1")]
        },
        Case(source: "github", fixture: ("github", "ping.octokit.json"), kind: "ping", delivery: "gh-ping") { h, b in
            // Signed with the previous secret during a rotation.
            try WebhookSigner.github(secret: h.secret("GH_OLD"), body: b).map { ($0.name, $0.value) }
                + [("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", "gh-ping")]
        },
        Case(source: "gitlab", fixture: ("gitlab", "push.go-gitlab.json"), kind: "Push Hook", delivery: "idem-7") { h, _ in
            WebhookSigner.gitlab(token: h.secret("GL")).map { ($0.name, $0.value) }
                + [("X-Gitlab-Event", "Push Hook"), ("Idempotency-Key", "idem-7"), ("X-Gitlab-Event-UUID", "uuid-other")]
        },
        Case(source: "gitea", fixture: ("gitea", "push.go-playground.json"), kind: "push", delivery: "gt-1") { h, b in
            try WebhookSigner.gitea(secret: h.secret("GT"), body: b).map { ($0.name, $0.value) }
                + [("X-Gitea-Event", "push"), ("X-Gitea-Delivery", "gt-1")]
        },
        Case(source: "bitbucket", fixture: ("bitbucket", "repo-push.go-scm.json"), kind: "repo:push", delivery: "bb-uuid") { h, b in
            try WebhookSigner.bitbucket(secret: h.secret("BB"), body: b).map { ($0.name, $0.value) }
                + [("X-Event-Key", "repo:push"), ("X-Request-UUID", "bb-uuid")]
        },
        Case(source: "bitbucket", fixture: ("bitbucket-server", "repo-refs-changed.go-playground.json"), kind: "repo:refs_changed", delivery: "dc-1") { h, b in
            try WebhookSigner.bitbucket(secret: h.secret("BB"), body: b).map { ($0.name, $0.value) }
                + [("X-Event-Key", "repo:refs_changed"), ("X-Request-Id", "dc-1")]
        },
        Case(source: "standard", fixture: ("github", "release.published.octokit.json"), kind: "unknown", delivery: "msg_42") { h, b in
            try WebhookSigner.standard(secret: h.secret("SW"), id: "msg_42", timestamp: Int(IngressHarness.now.timeIntervalSince1970), body: b)
                .map { ($0.name, $0.value) }
        },
        Case(source: "generic", fixture: ("gitea", "release.go-playground.json"), kind: "release", delivery: "req-9") { h, b in
            let scheme = try GenericHMACScheme(header: "X-Signature", prefix: "sha256=", timestampHeader: "X-Timestamp")
            return try WebhookSigner.generic(scheme: scheme, secret: h.secret("GN"), body: b, timestamp: Int(IngressHarness.now.timeIntervalSince1970))
                .map { ($0.name, $0.value) } + [("X-Request-Id", "req-9"), ("X-Event", "release")]
        },
    ]

    @Test(arguments: cases)
    func signedFixtureIsStored(_ c: Case) async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let body = try Fixtures.webhook(c.fixture.0, c.fixture.1)
        let headers = HTTPFields(try c.headers(h, body) + [("Content-Type", "application/json")])
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/hooks/\(c.source)", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { res in
                #expect(res.status == .accepted)
                let json = object(res)
                #expect(json["duplicate"] as? Bool == false)
                let id = try #require(json["event_id"] as? String)
                let stored = try #require(try await h.store.event(id: id))
                #expect(stored.summary.kind == c.kind)
                #expect(stored.summary.deliveryID == c.delivery)
                #expect(stored.body == body, "the raw bytes are stored exactly")
                #expect(!stored.headers.keys.contains { $0.lowercased().contains("signature") || $0.lowercased() == "x-gitlab-token" })
            }
        }
        #expect(h.leakedSecrets().isEmpty)
    }

    @Test func duplicateDeliveryIsAcknowledgedOnce() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let body = try Fixtures.webhook("github", "push.branch-1-commit.go-scm.json")
        let headers = HTTPFields(try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
            + [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "same-guid"), ("Content-Type", "application/json")])
        try await h.app.test(.router) { client in
            var first: String?
            try await client.execute(uri: "/hooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { res in
                #expect(res.status == .accepted)
                first = object(res)["event_id"] as? String
            }
            try await client.execute(uri: "/hooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { res in
                #expect(res.status == .ok)
                #expect(object(res)["duplicate"] as? Bool == true)
                #expect(object(res)["event_id"] as? String == first)
            }
        }
        #expect(try await h.count() == 1)
    }

    @Test func slackSlashCommandGetsAnImmediateMessage() async throws {
        // Slack's published example, at its own timestamp.
        let h = try IngressHarness(now: Date(timeIntervalSince1970: 1531420618))
        defer { h.dir.remove() }
        let body = try Fixtures.webhook("slack", "slash-command.webhook-collect.form")
        let headers = HTTPFields([("Content-Type", "application/x-www-form-urlencoded"),
                                  ("X-Slack-Request-Timestamp", "1531420618"),
                                  ("X-Slack-Signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")])
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/hooks/slack", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { res in
                #expect(res.status == .ok)
                let json = object(res)
                #expect(json["response_type"] as? String == "ephemeral")
                #expect((json["text"] as? String)?.contains("/webhook-collect") == true)
            }
        }
        let events = try await h.store.list(limit: nil, source: "slack")
        #expect(events.count == 1 && events[0].kind == "/webhook-collect" && events[0].deliveryID.hasPrefix("sha256:"))
    }

    @Test func slackEventsURLVerificationIsAnswered() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let body = Array(#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#.utf8)
        let signed = try WebhookSigner.slack(secret: h.secret("SL"), body: body, timestamp: Int(IngressHarness.now.timeIntervalSince1970))
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/hooks/slack", method: .post,
                                     headers: HTTPFields(signed.map { ($0.name, $0.value) } + [("Content-Type", "application/json")]),
                                     body: ByteBuffer(bytes: body)) { res in
                #expect(res.status == .ok)
                #expect(object(res)["challenge"] as? String == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
            }
        }
    }

    @Test func githubFormHooksAreAccepted() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let json = try Fixtures.webhook("github", "ping.small.go-playground.json")
        let body = Array(("payload=" + FormURLEncoded.escape(String(decoding: json, as: UTF8.self))).utf8)
        let headers = HTTPFields(try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
            + [("X-GitHub-Event", "ping"), ("X-GitHub-Delivery", "form-1"), ("Content-Type", "application/x-www-form-urlencoded")])
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/hooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { res in
                #expect(res.status == .accepted)
            }
        }
    }

    @Test func healthAndReadiness() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
        }
    }
}
