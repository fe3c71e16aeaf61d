import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MLHookCore
import MLHookServer
import NIOCore
import Signing
import Store
import TestSupport
import Testing

/// Each bad request gets its status, a body that says what was wrong, exactly one log line saying why,
/// and nothing stored.
@Suite struct IngressRejectionTests {
    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let source: String
        let status: HTTPResponse.Status
        let error: String
        /// Text the response message must contain.
        let says: String
        let request: @Sendable (IngressHarness) throws -> (headers: [(String, String)], body: [UInt8])
        var description: String { name }
    }

    static let push = Array(#"{"ref":"refs/heads/main","after":"9f1c0000","repository":{"full_name":"o/r"}}"#.utf8)
    static let ts = Int(IngressHarness.now.timeIntervalSince1970)

    static func github(_ h: IngressHarness, _ body: [UInt8], content: String = "application/json") throws -> [(String, String)] {
        try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
            + [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", UUID().uuidString), ("Content-Type", content)]
    }

    static let cases: [Case] = [
        Case(name: "missing signature", source: "github", status: .unauthorized, error: "invalid_signature", says: "missing X-Hub-Signature-256") { _ in
            ([("Content-Type", "application/json"), ("X-GitHub-Delivery", "x")], push)
        },
        Case(name: "wrong signature", source: "github", status: .unauthorized, error: "invalid_signature", says: "does not match") { h in
            (try WebhookSigner.github(secret: WebhookSecret("not-the-secret"), body: push).map { ($0.name, $0.value) }
                + [("Content-Type", "application/json")], push)
        },
        Case(name: "signature of another body", source: "github", status: .unauthorized, error: "invalid_signature", says: "does not match") { h in
            (try github(h, Array(#"{"ref":"refs/heads/evil"}"#.utf8)), push)
        },
        Case(name: "wrong algorithm prefix", source: "github", status: .unauthorized, error: "invalid_signature", says: "must be sha256") { h in
            let hex = try WebhookSigner.github(secret: h.secret("GH"), body: push)[0].value.dropFirst(7)
            return ([("X-Hub-Signature-256", "sha512=" + hex), ("Content-Type", "application/json")], push)
        },
        Case(name: "legacy sha1 only", source: "github", status: .unauthorized, error: "invalid_signature", says: "allow_sha1") { h in
            (try WebhookSigner.github(secret: h.secret("GH"), body: push).filter { $0.name == "X-Hub-Signature" }.map { ($0.name, $0.value) }
                + [("Content-Type", "application/json")], push)
        },
        Case(name: "wrong gitlab token", source: "gitlab", status: .unauthorized, error: "invalid_signature", says: "X-Gitlab-Token") { _ in
            ([("X-Gitlab-Token", "guess"), ("Content-Type", "application/json")], push)
        },
        Case(name: "slack timestamp at Int.min", source: "slack", status: .unauthorized, error: "invalid_signature",
             says: "X-Slack-Request-Timestamp must be integer Unix seconds") { _ in
            // This one request used to stop mlhook serve (Int(skew) trapped).
            ([("X-Slack-Request-Timestamp", "-9223372036854775808"), ("X-Slack-Signature", "v0=" + String(repeating: "0", count: 64)),
              ("Content-Type", "application/x-www-form-urlencoded")], Array("command=%2Faml".utf8))
        },
        Case(name: "generic timestamp past Int.max", source: "generic", status: .unauthorized, error: "invalid_signature",
             says: "X-Timestamp must be integer Unix seconds") { _ in
            ([("X-Timestamp", "99999999999999999999"), ("X-Signature", "sha256=" + String(repeating: "0", count: 64)),
              ("Content-Type", "application/json")], push)
        },
        Case(name: "stale slack timestamp", source: "slack", status: .unauthorized, error: "invalid_signature", says: "window") { h in
            let body = Array("command=%2Faml&text=scale+gpu+4&user_id=U1".utf8)
            return (try WebhookSigner.slack(secret: h.secret("SL"), body: body, timestamp: ts - 600).map { ($0.name, $0.value) }
                + [("Content-Type", "application/x-www-form-urlencoded")], body)
        },
        Case(name: "stale standard-webhooks timestamp", source: "standard", status: .unauthorized, error: "invalid_signature", says: "window") { h in
            (try WebhookSigner.standard(secret: h.secret("SW"), id: "msg_1", timestamp: ts + 600, body: push).map { ($0.name, $0.value) }
                + [("Content-Type", "application/json")], push)
        },
        Case(name: "body over the limit", source: "github", status: .contentTooLarge, error: "payload_too_large", says: "65536") { h in
            let big = Array("{\"a\":\"".utf8) + Array(repeating: UInt8(ascii: "x"), count: 70_000) + Array("\"}".utf8)
            return (try github(h, big), big)
        },
        Case(name: "invalid JSON", source: "github", status: .badRequest, error: "malformed_body", says: "invalid JSON at byte") { h in
            let bad = Array(#"{"ref": "refs/heads/main",}"#.utf8)
            return (try github(h, bad), bad)
        },
        Case(name: "truncated JSON", source: "github", status: .badRequest, error: "malformed_body", says: "ends") { h in
            let cut = Array(push.prefix(30))
            return (try github(h, cut), cut)
        },
        Case(name: "invalid UTF-8", source: "github", status: .badRequest, error: "malformed_body", says: "UTF-8") { h in
            let bad: [UInt8] = Array(#"{"name":""#.utf8) + [0xC3, 0x28, 0xFF] + Array(#""}"#.utf8)
            return (try github(h, bad), bad)
        },
        Case(name: "deeply nested JSON", source: "github", status: .badRequest, error: "malformed_body", says: "deeper than 128") { h in
            let deep = Array(("{\"a\":" + String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000) + "}").utf8)
            return (try github(h, deep), deep)
        },
        Case(name: "JSON that is not an object", source: "github", status: .badRequest, error: "malformed_body", says: "object") { h in
            let arr = Array("[1,2,3]".utf8)
            return (try github(h, arr), arr)
        },
        Case(name: "unknown source", source: "nope", status: .notFound, error: "unknown_source", says: "no source named") { h in
            (try github(h, push), push)
        },
        Case(name: "wrong content type", source: "github", status: .unsupportedMediaType, error: "unsupported_media_type", says: "text/plain") { h in
            (try github(h, push, content: "text/plain"), push)
        },
        Case(name: "no content type", source: "gitea", status: .unsupportedMediaType, error: "unsupported_media_type", says: "application/json") { h in
            (try WebhookSigner.gitea(secret: h.secret("GT"), body: push).map { ($0.name, $0.value) }, push)
        },
        Case(name: "form to a JSON-only source", source: "gitea", status: .unsupportedMediaType, error: "unsupported_media_type", says: "application/json") { h in
            (try WebhookSigner.gitea(secret: h.secret("GT"), body: push).map { ($0.name, $0.value) }
                + [("Content-Type", "application/x-www-form-urlencoded")], push)
        },
        Case(name: "slack form without a command", source: "slack", status: .badRequest, error: "malformed_body", says: "command") { h in
            let body = Array("user_id=U1&text=hi".utf8)
            return (try WebhookSigner.slack(secret: h.secret("SL"), body: body, timestamp: ts).map { ($0.name, $0.value) }
                + [("Content-Type", "application/x-www-form-urlencoded")], body)
        },
        Case(name: "github form without payload", source: "github", status: .badRequest, error: "malformed_body", says: "payload") { h in
            let body = Array("foo=bar".utf8)
            return (try github(h, body, content: "application/x-www-form-urlencoded"), body)
        },
    ]

    @Test(arguments: cases)
    func rejected(_ c: Case) async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let (headers, body) = try c.request(h)
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/hooks/\(c.source)", method: .post, headers: HTTPFields(headers), body: ByteBuffer(bytes: body)) { res in
                #expect(res.status == c.status)
                let json = object(res)
                #expect(json["error"] as? String == c.error)
                let message = json["message"] as? String ?? ""
                #expect(message.contains(c.says), "message was: \(message)")
            }
        }
        #expect(try await h.count() == 0, "nothing is stored")
        let lines = h.rejections
        #expect(lines.count == 1, "one log line: \(lines.map(\.text))")
        #expect(lines.first?.message.contains(c.says) == true)
        #expect(lines.first?.metadata["status"] == "\(c.status.code)")
        #expect(h.leakedSecrets().isEmpty)
    }

    @Test func aSourceWithAnEmptySecretRefusesToStart() throws {
        let loaded = try MLHookConfig.parse(yaml: "sources:\n  - { name: github, type: github, secrets: [ { env: GH } ] }\n", file: "t.yaml")
        do {
            _ = try MLHookRuntime.resolveSources(loaded.config, logger: CapturedLogs().logger(), environment: ["GH": ""])
            Issue.record("an empty secret was accepted")
        } catch {
            #expect(error.description.contains("sources[github].secrets[0]: the secret (env GH) is empty"))
        }
        do {
            _ = try MLHookRuntime.resolveSources(loaded.config, logger: CapturedLogs().logger(), environment: [:])
            Issue.record("an unset secret was accepted")
        } catch {
            #expect(error.description.contains("environment variable GH is not set"))
        }
    }

    @Test func insecureSourcesWarnAtStartAndAcceptUnsigned() async throws {
        let h = try IngressHarness(config: "sources:\n  - { name: open, type: gitea, insecure: true }\n")
        defer { h.dir.remove() }
        #expect(h.logs.lines.contains { $0.level == .warning && $0.message.contains("source open is insecure") })
        try await h.app.test(.router) { client in
            try await client.execute(uri: "/hooks/open", method: .post, headers: HTTPFields([("Content-Type", "application/json")]),
                                     body: ByteBuffer(bytes: Self.push)) { #expect($0.status == .accepted) }
        }
    }
}
