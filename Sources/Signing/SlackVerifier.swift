import Foundation
import HTTPTypes

/// Slack's v0 scheme: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{ts}:{body}">` with
/// `X-Slack-Request-Timestamp` inside a replay window (5 minutes by default).
public struct SlackVerifier: WebhookVerifier {
    public let scheme = "slack"
    private let keys: KeyRing
    private let tolerance: TimeInterval
    private static let signatureName = HTTPField.Name.known("X-Slack-Signature")
    private static let timestampName = HTTPField.Name.known("X-Slack-Request-Timestamp")

    /// Creates the verifier.
    public init(secrets: [WebhookSecret], tolerance: TimeInterval = 300) throws(SigningError) {
        self.keys = try KeyRing(secrets: secrets.map(\.bytes), algorithms: [.sha256])
        self.tolerance = tolerance
    }

    public func verify(headers: HTTPFields, body: UnsafeRawBufferPointer, now: Date) throws(VerificationFailure) -> Int {
        let sigHeader = Self.signatureName.rawName, tsHeader = Self.timestampName.rawName
        guard let ts = headers[Self.timestampName] else {
            throw VerificationFailure(.missingHeader, header: tsHeader, scheme: scheme, detail: "missing \(tsHeader) header")
        }
        guard let sig = headers[Self.signatureName] else {
            throw VerificationFailure(.missingHeader, header: sigHeader, scheme: scheme, detail: "missing \(sigHeader) header")
        }
        guard sig.hasPrefix("v0="), let mac = ByteEncoding.unhex(sig.dropFirst(3)), mac.count == 32 else {
            throw VerificationFailure(.malformedHeader, header: sigHeader, scheme: scheme,
                                      detail: "\(sigHeader) must look like v0=<64 hex digits>")
        }
        _ = try checkTimestamp(ts, header: tsHeader, scheme: scheme, now: now, tolerance: tolerance)
        let prefix = Array("v0:\(ts):".utf8)
        let index = prefix.withUnsafeBytes { p in keys.match(.sha256, parts: [p, body], expected: mac) }
        guard let index else {
            throw VerificationFailure(.mismatch, header: sigHeader, scheme: scheme,
                                      detail: "\(sigHeader) does not match the v0 signature under any configured signing secret")
        }
        return index
    }
}
