import Foundation
import HTTPTypes
import Signing
import Testing

/// Each scheme accepts what its sender produces and rejects, with the right reason, what it must not.
@Suite struct VerifierTests {
    let body = Array(#"{"ref":"refs/heads/main","after":"9f1c"}"#.utf8)
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let secret = WebhookSecret("s3cr3t-current")
    let oldSecret = WebhookSecret("s3cr3t-previous")

    func verify(_ v: some WebhookVerifier, _ headers: [WebhookSigner.Header], body: [UInt8]? = nil,
                at: Date? = nil) -> Result<Int, VerificationFailure> {
        (body ?? self.body).withUnsafeBytes { raw in
            Result { () throws(VerificationFailure) -> Int in try v.verify(headers: fields(headers), body: raw, now: at ?? now) }
        }
    }

    func reason(_ r: Result<Int, VerificationFailure>) -> VerificationFailure.Reason? {
        if case .failure(let f) = r { return f.reason }
        return nil
    }

    @Test func githubAcceptsEitherRotatedSecretAndRejectsTampering() throws {
        let v = try HexSignatureVerifier.github(secrets: [secret, oldSecret])
        #expect(try verify(v, WebhookSigner.github(secret: secret, body: body)).get() == 0)
        #expect(try verify(v, WebhookSigner.github(secret: oldSecret, body: body)).get() == 1)
        var tampered = body
        tampered[2] ^= 1
        #expect(reason(verify(v, try WebhookSigner.github(secret: secret, body: body), body: tampered)) == .mismatch)
        #expect(reason(verify(v, try WebhookSigner.github(secret: WebhookSecret("wrong"), body: body))) == .mismatch)
        #expect(reason(verify(v, [])) == .missingHeader)
    }

    @Test func githubRefusesSHA1UnlessAllowed() throws {
        let sha1Only = try WebhookSigner.github(secret: secret, body: body).filter { $0.name == "X-Hub-Signature" }
        let strict = try HexSignatureVerifier.github(secrets: [secret])
        #expect(reason(verify(strict, sha1Only)) == .algorithmNotAllowed)
        let lenient = try HexSignatureVerifier.github(secrets: [secret], allowSHA1: true)
        #expect(try verify(lenient, sha1Only).get() == 0)
    }

    @Test func githubRejectsWrongPrefixAndMalformedHex() throws {
        let v = try HexSignatureVerifier.github(secrets: [secret])
        let good = try WebhookSigner.github(secret: secret, body: body)[0].value
        let hex = String(good.dropFirst(7))
        #expect(reason(verify(v, [("X-Hub-Signature-256", "sha1=" + hex)])) == .algorithmNotAllowed)
        #expect(reason(verify(v, [("X-Hub-Signature-256", "md5=" + hex)])) == .algorithmNotAllowed)
        #expect(reason(verify(v, [("X-Hub-Signature-256", hex)])) == .malformedHeader)
        #expect(reason(verify(v, [("X-Hub-Signature-256", "sha256=" + hex.dropLast(2))])) == .malformedHeader)
        #expect(reason(verify(v, [("X-Hub-Signature-256", "sha256=zz" + hex.dropFirst(2))])) == .malformedHeader)
        // Hex case does not matter: bytes are compared, not strings.
        #expect(try verify(v, [("X-Hub-Signature-256", "sha256=" + hex.uppercased())]).get() == 0)
    }

    @Test func failureMessagesNeverContainTheExpectedMAC() throws {
        let v = try HexSignatureVerifier.github(secrets: [secret])
        let expected = try WebhookSigner.github(secret: secret, body: body)[0].value.dropFirst(7)
        guard case .failure(let f) = verify(v, [("X-Hub-Signature-256", "sha256=" + String(repeating: "0", count: 64))]) else {
            Issue.record("a zero MAC verified")
            return
        }
        #expect(!f.description.contains(expected))
        #expect(!f.description.contains(secret.text))
        #expect(f.header == "X-Hub-Signature-256" && f.scheme == "github")
    }

    @Test func giteaUsesBareHex() throws {
        let v = try HexSignatureVerifier.gitea(secrets: [secret])
        let signed = try WebhookSigner.gitea(secret: secret, body: body)
        #expect(try verify(v, signed).get() == 0)
        #expect(reason(verify(v, [("X-Gitea-Signature", "sha256=" + signed[0].value)])) == .malformedHeader)
        #expect(reason(verify(v, [])) == .missingHeader)
    }

    @Test func bitbucketTakesTheAlgorithmFromThePrefix() throws {
        let v = try HexSignatureVerifier.bitbucket(secrets: [secret])
        for alg in HMACAlgorithm.allCases {
            #expect(try verify(v, WebhookSigner.bitbucket(secret: secret, body: body, algorithm: alg)).get() == 0)
        }
        // A sha256 MAC labelled sha1 fails on length, not by guessing.
        let sha256 = try WebhookSigner.bitbucket(secret: secret, body: body)[0].value
        #expect(reason(verify(v, [("X-Hub-Signature", "sha1=" + sha256.dropFirst(7))])) == .malformedHeader)
        #expect(reason(verify(v, [("X-Hub-Signature", "md5=00")])) == .algorithmNotAllowed)
    }

    @Test func gitlabTokenIsComparedAsAWholeAndSigningTokenIsStandardWebhooks() throws {
        let token = WebhookSecret("glpat-like-shared-token")
        let signing = WebhookSecret("whsec_" + ByteEncoding.base64(Array(repeating: 7, count: 32)))
        let v = try GitLabVerifier(secrets: [token, signing])
        #expect(try verify(v, WebhookSigner.gitlab(token: token)).get() == 0)
        #expect(reason(verify(v, [("X-Gitlab-Token", "glpat-like-shared-toke")])) == .mismatch)
        #expect(reason(verify(v, [("X-Gitlab-Token", "glpat-like-shared-tokenX")])) == .mismatch)
        #expect(reason(verify(v, [])) == .missingHeader)
        let ts = Int(now.timeIntervalSince1970)
        let std = try WebhookSigner.standard(secret: signing, id: "idem-1", timestamp: ts, body: body)
        #expect(try verify(v, std).get() == 0)
        // A forged body signature is not rescued by a valid token.
        var forged = std
        forged[2].value = "v1," + ByteEncoding.base64(Array(repeating: 1, count: 32))
        #expect(reason(verify(v, forged + WebhookSigner.gitlab(token: token))) == .mismatch)
    }

    @Test func slackRejectsStaleFutureMissingAndMalformed() throws {
        let v = try SlackVerifier(secrets: [secret])
        let ts = Int(now.timeIntervalSince1970)
        #expect(try verify(v, WebhookSigner.slack(secret: secret, body: body, timestamp: ts - 299)).get() == 0)
        #expect(reason(verify(v, try WebhookSigner.slack(secret: secret, body: body, timestamp: ts - 301))) == .staleTimestamp)
        #expect(reason(verify(v, try WebhookSigner.slack(secret: secret, body: body, timestamp: ts + 301))) == .staleTimestamp)
        #expect(reason(verify(v, [("X-Slack-Signature", "v0=00")])) == .missingHeader)
        #expect(reason(verify(v, [("X-Slack-Request-Timestamp", "\(ts)"), ("X-Slack-Signature", "v1=ab")])) == .malformedHeader)
        #expect(reason(verify(v, [("X-Slack-Request-Timestamp", "yesterday"),
                                  ("X-Slack-Signature", "v0=" + String(repeating: "a", count: 64))])) == .malformedHeader)
    }

    @Test func standardWebhooksAcceptsAnyMatchingEntryAndSkipsUnknownVersions() throws {
        let key = WebhookSecret("whsec_" + ByteEncoding.base64(Array(repeating: 42, count: 24)))
        let v = try StandardWebhooksVerifier(secrets: [key])
        let ts = Int(now.timeIntervalSince1970)
        var signed = try WebhookSigner.standard(secret: key, id: "msg_1", timestamp: ts, body: body)
        let good = signed[2].value
        signed[2].value = "v1a,abcdef v1,\(ByteEncoding.base64(Array(repeating: 0, count: 32))) \(good)"
        #expect(try verify(v, signed).get() == 0)
        signed[2].value = "v1a,abcdef"
        #expect(reason(verify(v, signed)) == .malformedHeader)
        let stale = try WebhookSigner.standard(secret: key, id: "msg_1", timestamp: ts - 301, body: body)
        #expect(reason(verify(v, stale)) == .staleTimestamp)
        let future = try WebhookSigner.standard(secret: key, id: "msg_1", timestamp: ts + 301, body: body)
        #expect(reason(verify(v, future)) == .staleTimestamp)
        // Svix-prefixed headers are the same scheme.
        let svix = try WebhookSigner.standard(secret: key, id: "msg_2", timestamp: ts, body: body)
            .map { (name: $0.name.replacingOccurrences(of: "webhook-", with: "svix-"), value: $0.value) }
        #expect(try verify(v, svix).get() == 0)
    }

    @Test func standardWebhooksRefusesABadKey() {
        #expect(throws: SigningError.invalidBase64Key) { try StandardWebhooksVerifier(secrets: [WebhookSecret("whsec_%%%")]) }
    }

    @Test func genericSchemeWithTimestampPrefixAndBase64() throws {
        let scheme = try GenericHMACScheme(header: "X-Signature", algorithm: .sha512, encoding: .base64, prefix: "v1=",
                                           timestampHeader: "X-Timestamp", signedString: "{timestamp}:{header:X-Request-Id}:{body}")
        let v = try GenericHMACVerifier(scheme: scheme, secrets: [secret])
        let ts = Int(now.timeIntervalSince1970)
        let signed = try WebhookSigner.generic(scheme: scheme, secret: secret, body: body, timestamp: ts, headers: ["X-Request-Id": "r-1"])
        #expect(try verify(v, signed).get() == 0)
        // Changing the header that is part of the signed string breaks the signature.
        let changed = signed.map { $0.name == "X-Request-Id" ? (name: $0.name, value: "r-2") : $0 }
        #expect(reason(verify(v, changed)) == .mismatch)
        let noPrefix = signed.map { $0.name == "X-Signature" ? (name: $0.name, value: String($0.value.dropFirst(3))) : $0 }
        #expect(reason(verify(v, noPrefix)) == .malformedHeader)
        let stale = try WebhookSigner.generic(scheme: scheme, secret: secret, body: body, timestamp: ts - 1000, headers: ["X-Request-Id": "r-1"])
        #expect(reason(verify(v, stale)) == .staleTimestamp)
    }

    @Test func genericLayoutErrorsNameTheProblem() {
        #expect(throws: GenericLayoutError.self) { try GenericHMACScheme(header: "X-Sig", signedString: "{timestamp}") }
        #expect(throws: GenericLayoutError.self) { try GenericHMACScheme(header: "X-Sig", signedString: "{timestamp}.{body}") }
        #expect(throws: GenericLayoutError.self) { try GenericHMACScheme(header: "X-Sig", signedString: "{bogus}{body}") }
        // A timestamp header whose value the signature does not cover: the replay window would protect nothing.
        #expect(throws: GenericLayoutError.self) { try GenericHMACScheme(header: "X-Sig", timestampHeader: "X-Ts", signedString: "{body}") }
        #expect(throws: GenericLayoutError.self) { try GenericHMACScheme(header: "bad header", signedString: "{body}") }
    }

    @Test func emptySecretsAreRefused() {
        #expect(throws: SigningError.emptyKey) { try HMACKey(algorithm: .sha256, key: []) }
        #expect(throws: SigningError.emptyKey) { try HexSignatureVerifier.github(secrets: [WebhookSecret("")]) }
        #expect(throws: SigningError.emptyKey) { try GitLabVerifier(secrets: [WebhookSecret("")]) }
    }

    @Test func secretsDoNotPrintThemselves() {
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
    }

    @Test func constantTimeComparisons() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(!ConstantTime.equals([], []))
        #expect(ConstantTime.tokenEquals("abc", "abc"))
        #expect(!ConstantTime.tokenEquals("abc", "abcd"))
    }

    @Test func hmacMatchesAcrossAlgorithmsAndParts() throws {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = try HMACKey(algorithm: .sha256, key: Array("Jefe".utf8))
        let whole = key.authenticationCode(Array("what do ya want for nothing?".utf8))
        #expect(ByteEncoding.hex(whole) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        let split = Array("what do ya ".utf8).withUnsafeBytes { a in
            Array("want for nothing?".utf8).withUnsafeBytes { b in key.authenticationCode(parts: [a, b]) }
        }
        #expect(split == whole)
        let sha512 = try HMACKey(algorithm: .sha512, key: Array("Jefe".utf8)).authenticationCode(Array("what do ya want for nothing?".utf8))
        #expect(ByteEncoding.hex(sha512).hasPrefix("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"))
    }
}
