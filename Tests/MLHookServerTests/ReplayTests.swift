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

/// A captured delivery replayed with a fresh value in a header the signature does not cover must not make new work.
@Suite struct ReplayTests {
    static let rules = """
        sources:
          - { name: github, type: github, secrets: [ { env: GH } ] }
          - { name: standard, type: standard, secrets: [ { env: SW } ] }
        rules:
          - name: on-release
            when: { source: github, kind: release }
            actions: [ { register_model: { name: churn, url: "https://models.example.com/churn.pkl" } } ]
        """

    @Test func aReplayedReleaseWithANewDeliveryHeaderPlansNoSecondJob() async throws {
        let h = try IngressHarness(config: Self.rules)
        defer { h.dir.remove() }
        let body = try Fixtures.webhook("github", "release.published.octokit.json")
        let signature = try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
        for delivery in ["original", "replayed-1", "replayed-2"] {
            let headers = HTTPFields(signature + [("Content-Type", "application/json"), ("X-GitHub-Event", "release"), ("X-GitHub-Delivery", delivery)])
            let status = try await h.app.test(.router) { client in
                try await client.execute(uri: "/hooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { $0.status }
            }
            #expect(status == .accepted)
        }
        // Each delivery is recorded (the sender did deliver it), but the signed body is one event's: one job.
        #expect(try await h.store.list(limit: nil, source: "github").count == 3)
        #expect(try await h.store.jobs(JobQuery()).count == 1)
    }

    @Test func aSvixSignedRequestIsDeduplicatedOnTheIdItsSignatureCovers() async throws {
        let h = try IngressHarness(config: Self.rules)
        defer { h.dir.remove() }
        let body = Array(#"{"type":"invoice.paid","data":{"id":"in_1"}}"#.utf8)
        let signed = try WebhookSigner.standard(secret: h.secret("SW"), id: "msg_signed", timestamp: Int(IngressHarness.now.timeIntervalSince1970), body: body)
            .map { (name: $0.name.replacingOccurrences(of: "webhook-", with: "svix-"), value: $0.value) }
        var ids: [String] = []
        for unsigned in ["a", "b"] {
            // An unsigned webhook-id beside the svix-* signature: it must not be the dedup key.
            let headers = HTTPFields(signed.map { ($0.name, $0.value) } + [("Content-Type", "application/json"), ("webhook-id", "attacker-\(unsigned)")])
            let answer = try await h.app.test(.router) { client in
                try await client.execute(uri: "/hooks/standard", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { String(buffer: $0.body) }
            }
            ids.append(answer)
        }
        #expect(ids[1].contains(#""duplicate":true"#), "\(ids)")
        let stored = try await h.store.list(limit: nil, source: "standard")
        #expect(stored.count == 1 && stored[0].deliveryID == "msg_signed")
    }
}
