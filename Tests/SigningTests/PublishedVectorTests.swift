import Foundation
import HTTPTypes
import Signing
import Testing

/// The published vectors quoted in shared/webhook-senders.md, reproduced bit for bit.
@Suite struct PublishedVectorTests {
    @Test func githubDocsExample() throws {
        // docs.github.com "Validating webhook deliveries": secret and payload from the docs.
        let headers = try WebhookSigner.github(secret: WebhookSecret("It's a Secret to Everybody"), body: Array("Hello, World!".utf8))
        #expect(headers.first { $0.name == "X-Hub-Signature-256" }?.value
                == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        let verifier = try HexSignatureVerifier.github(secrets: [WebhookSecret("It's a Secret to Everybody")])
        var fields = HTTPFields()
        fields[HTTPField.Name("X-Hub-Signature-256")!] = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        let index = try Array("Hello, World!".utf8).withUnsafeBytes { try verifier.verify(headers: fields, body: $0, now: Date()) }
        #expect(index == 0)
    }

    /// Slack's documented example, with a clock fixed at the example's timestamp.
    @Test func slackDocsExample() throws {
        let body = Array("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c".utf8)
        let secret = WebhookSecret("8f742231b10e8888abcd99yyyzzz85a5")
        let signed = try WebhookSigner.slack(secret: secret, body: body, timestamp: 1531420618)
        #expect(signed.last?.value == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")

        let verifier = try SlackVerifier(secrets: [secret])
        let headers = fields(signed)
        let at = Date(timeIntervalSince1970: 1531420618 + 60)
        #expect(try body.withUnsafeBytes { try verifier.verify(headers: headers, body: $0, now: at) } == 0)
        // The same request six minutes later is stale.
        let late = Date(timeIntervalSince1970: 1531420618 + 360)
        #expect(throws: VerificationFailure.self) {
            try body.withUnsafeBytes { try verifier.verify(headers: headers, body: $0, now: late) }
        }
    }

    /// standard-webhooks `libraries/python/tests/test_webhooks.py::test_sign_function` (and the Rust `test_sign`).
    @Test func standardWebhooksLibraryVector() throws {
        let secret = WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let signed = try WebhookSigner.standard(secret: secret, id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body)
        #expect(signed.last?.value == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let verifier = try StandardWebhooksVerifier(secrets: [secret])
        let at = Date(timeIntervalSince1970: 1614265330)
        #expect(try body.withUnsafeBytes { try verifier.verify(headers: fields(signed), body: $0, now: at) } == 0)
    }
}

func fields(_ headers: [WebhookSigner.Header]) -> HTTPFields {
    var f = HTTPFields()
    for h in headers { f.append(HTTPField(name: HTTPField.Name(h.name)!, value: h.value)) }
    return f
}
