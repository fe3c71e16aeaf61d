import Foundation
import HTTPTypes
@testable import Signing
import Testing

/// Requests built to crash a verifier or make it work hard before any signature matches.
@Suite struct HostileInputTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let body = Array(#"{"ref":"refs/heads/main"}"#.utf8)

    func fields(_ pairs: [(String, String)]) -> HTTPFields {
        var f = HTTPFields()
        for (n, v) in pairs { f.append(HTTPField(name: HTTPField.Name(n)!, value: v)) }
        return f
    }

    func reason(_ v: some WebhookVerifier, _ headers: [(String, String)], body: [UInt8]? = nil) -> VerificationFailure.Reason? {
        (body ?? self.body).withUnsafeBytes { raw in
            do throws(VerificationFailure) {
                _ = try v.verify(headers: fields(headers), body: raw, now: now)
                return nil
            } catch {
                return error.reason
            }
        }
    }

    /// Not plain in-range Unix seconds. The first used to kill `mlhook serve` (Int(skew) overflowed). (Spaces around
    /// a value are not part of it in HTTP: HTTPFields drops them, so " 1800000000" is the plain number.)
    static let badTimestamps = ["-9223372036854775808", "9223372036854775807", "-1", "99999999999999999999", "+1800000000",
                                "1800000000 1", "1.8e9", "0x6B49D200", "", "１８００００００００"]

    @Test(arguments: badTimestamps)
    func aTimestampThatIsNotPlainDigitsIsMalformedForEveryTimestampedScheme(ts: String) throws {
        let mac = String(repeating: "a", count: 64)
        let slack = try SlackVerifier(secrets: [WebhookSecret("slack-secret")])
        #expect(reason(slack, [("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", "v0=" + mac)]) == .malformedHeader)

        let key = WebhookSecret("whsec_" + ByteEncoding.base64(Array(repeating: 7, count: 24)))
        let standard = try StandardWebhooksVerifier(secrets: [key])
        let entry = "v1," + ByteEncoding.base64(Array(repeating: 1, count: 32))
        #expect(reason(standard, [("webhook-id", "msg_1"), ("webhook-timestamp", ts), ("webhook-signature", entry)]) == .malformedHeader)

        let gitlab = try GitLabVerifier(secrets: [key])
        #expect(reason(gitlab, [("webhook-id", "msg_1"), ("webhook-timestamp", ts), ("webhook-signature", entry)]) == .malformedHeader)

        let scheme = try GenericHMACScheme(header: "X-Signature", timestampHeader: "X-Timestamp")
        let generic = try GenericHMACVerifier(scheme: scheme, secrets: [WebhookSecret("generic")])
        #expect(reason(generic, [("X-Timestamp", ts), ("X-Signature", mac)]) == .malformedHeader)
    }

    @Test func theLargestTimestampsThatAreDigitsAreStaleNotACrash() throws {
        let slack = try SlackVerifier(secrets: [WebhookSecret("slack-secret")])
        for ts in ["0", "999999999999", "000000000001"] {
            #expect(reason(slack, [("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", "v0=" + String(repeating: "a", count: 64))]) == .staleTimestamp)
        }
    }

    /// 1,000 `v1,` entries over a 5 MB body took 3.1 s of CPU to refuse: an HMAC over the body per entry and secret.
    @Test func refusingManyStandardWebhooksEntriesCostsOneMACPerSecret() throws {
        let keys = (1...2).map { WebhookSecret("whsec_" + ByteEncoding.base64(Array(repeating: UInt8($0), count: 24))) }
        let v = try StandardWebhooksVerifier(secrets: keys)
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 5 << 20)
        let ts = String(Int(now.timeIntervalSince1970))
        let junk = { (n: Int) in (0..<n).map { i in "v1," + ByteEncoding.base64(Array(repeating: UInt8(truncatingIfNeeded: i), count: 32)) } }
        let counter = HMACKey.PassCounter()
        HMACKey.$passCounter.withValue(counter) {
            // As many entries as a sender may list: one MAC pass per secret, not per entry.
            #expect(reason(v, [("webhook-id", "msg_1"), ("webhook-timestamp", ts),
                               ("webhook-signature", junk(StandardWebhooksVerifier.maxEntries).joined(separator: " "))], body: big) == .mismatch)
            #expect(counter.value == keys.count)
            // More than that is refused before any MAC.
            #expect(reason(v, [("webhook-id", "msg_1"), ("webhook-timestamp", ts),
                               ("webhook-signature", junk(1000).joined(separator: " "))], body: big) == .malformedHeader)
            #expect(counter.value == keys.count)
        }
        // The real signature among junk entries is still found.
        let signed = try WebhookSigner.standard(secret: keys[1], id: "msg_1", timestamp: Int(now.timeIntervalSince1970), body: body)
        let mixed = junk(10).joined(separator: " ") + " " + signed[2].value
        #expect(reason(v, [("webhook-id", "msg_1"), ("webhook-timestamp", ts), ("webhook-signature", mixed)]) == nil)
    }

    @Test func refusingAnySchemeCostsAtMostOneMACPerSecret() throws {
        let secrets = [WebhookSecret("one"), WebhookSecret("two"), WebhookSecret("three")]
        let ts = String(Int(now.timeIntervalSince1970))
        let hex = String(repeating: "0", count: 64)
        let cases: [(any WebhookVerifier, [(String, String)])] = [
            (try HexSignatureVerifier.github(secrets: secrets), [("X-Hub-Signature-256", "sha256=" + hex)]),
            (try HexSignatureVerifier.gitea(secrets: secrets), [("X-Gitea-Signature", hex)]),
            (try HexSignatureVerifier.bitbucket(secrets: secrets), [("X-Hub-Signature", "sha256=" + hex)]),
            (try SlackVerifier(secrets: secrets), [("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", "v0=" + hex)]),
            (try GenericHMACVerifier(scheme: try GenericHMACScheme(header: "X-Signature"), secrets: secrets), [("X-Signature", hex)]),
        ]
        for (verifier, headers) in cases {
            let counter = HMACKey.PassCounter()
            HMACKey.$passCounter.withValue(counter) {
                #expect(reason(verifier, headers) == .mismatch, "\(verifier.scheme)")
                #expect(counter.value <= secrets.count, "\(verifier.scheme): \(counter.value) MAC passes")
            }
        }
    }
}
