import Foundation
import HTTPTypes

/// GitLab: the classic `X-Gitlab-Token` (the shared secret itself, compared in constant time), or GitLab's
/// Standard-Webhooks signing token (`whsec_…` secrets) when the request carries `webhook-signature`.
///
/// Secrets starting with `whsec_` are signing tokens; the others are classic tokens. When a request carries a
/// `webhook-signature` and signing tokens are configured, that signature must verify: a valid classic token
/// does not rescue a forged body signature.
public struct GitLabVerifier: WebhookVerifier {
    public let scheme = "gitlab"
    private let tokens: [WebhookSecret]
    private let signing: StandardWebhooksVerifier?
    private static let tokenName = HTTPField.Name.known("X-Gitlab-Token")

    /// Creates the verifier.
    public init(secrets: [WebhookSecret], tolerance: TimeInterval = 300) throws(SigningError) {
        let signingSecrets = secrets.filter { $0.text.hasPrefix("whsec_") }
        self.tokens = secrets.filter { !$0.text.hasPrefix("whsec_") }
        self.signing = signingSecrets.isEmpty ? nil
            : try StandardWebhooksVerifier(secrets: signingSecrets, tolerance: tolerance, scheme: "gitlab")
        for token in tokens where token.bytes.isEmpty { throw SigningError.emptyKey }
    }

    public func verify(headers: HTTPFields, body: UnsafeRawBufferPointer, now: Date) throws(VerificationFailure) -> Int {
        if let signing, StandardWebhooksVerifier.isPresent(in: headers) || tokens.isEmpty {
            return try signing.verify(headers: headers, body: body, now: now)
        }
        let name = Self.tokenName.rawName
        guard let token = headers[Self.tokenName] else {
            throw VerificationFailure(.missingHeader, header: name, scheme: scheme, detail: "missing \(name) header")
        }
        // Compare against every token so the time taken does not reveal which one is close.
        var matched: Int?
        for (index, expected) in tokens.enumerated() where ConstantTime.tokenEquals(token, expected.text) {
            matched = matched ?? index
        }
        guard let matched else {
            throw VerificationFailure(.mismatch, header: name, scheme: scheme,
                                      detail: "\(name) does not equal any configured token")
        }
        return matched
    }
}
