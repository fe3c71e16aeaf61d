import Foundation
import HTTPTypes

/// Standard Webhooks v1 (also Svix and GitLab's signing token): `webhook-signature` holds space-separated
/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` entries, keys are `whsec_<base64>`, and
/// `webhook-timestamp` must be within ±5 minutes.
public struct StandardWebhooksVerifier: WebhookVerifier {
    public let scheme: String
    private let keys: KeyRing
    private let tolerance: TimeInterval
    private static let prefixes = ["webhook", "svix"]
    /// The most `v1,` entries one signature header may list.
    static let maxEntries = 16

    /// Creates the verifier.
    /// - Parameters:
    ///   - secrets: `whsec_…` secrets (the prefix is optional; the rest is base64).
    ///   - tolerance: The replay window in seconds, past and future.
    ///   - scheme: The name used in errors (`standard`, or `gitlab` when GitLab signs this way).
    public init(secrets: [WebhookSecret], tolerance: TimeInterval = 300, scheme: String = "standard") throws(SigningError) {
        var raw: [[UInt8]] = []
        for secret in secrets { raw.append(try secret.standardWebhooksKey()) }
        self.keys = try KeyRing(secrets: raw, algorithms: [.sha256])
        self.tolerance = tolerance
        self.scheme = scheme
    }

    /// Whether a request carries this scheme's signature header (used by GitLab to pick a scheme).
    public static func isPresent(in headers: HTTPFields) -> Bool {
        headers[.known("webhook-signature")] != nil || headers[.known("svix-signature")] != nil
    }

    /// The header family a request is signed with: `svix` when only `svix-signature` is there, else `webhook`.
    static func prefix(of headers: HTTPFields) -> String {
        Self.prefixes.first { headers[.known("\($0)-signature")] != nil } ?? "webhook"
    }

    /// The message id the signature covers (`svix-id` beside `svix-signature`, else `webhook-id`): the only id
    /// of such a request a sender cannot change without breaking the signature, so the one to deduplicate on.
    public static func signedID(in headers: HTTPFields) -> String? {
        headers[.known("\(prefix(of: headers))-id")]
    }

    public func verify(headers: HTTPFields, body: UnsafeRawBufferPointer, now: Date) throws(VerificationFailure) -> Int {
        let p = Self.prefix(of: headers)
        let idName = "\(p)-id", tsName = "\(p)-timestamp", sigName = "\(p)-signature"
        guard let sig = headers[.known(sigName)] else {
            throw VerificationFailure(.missingHeader, header: sigName, scheme: scheme, detail: "missing \(sigName) header")
        }
        guard let id = headers[.known(idName)], !id.isEmpty else {
            throw VerificationFailure(.missingHeader, header: idName, scheme: scheme, detail: "missing \(idName) header")
        }
        guard let ts = headers[.known(tsName)] else {
            throw VerificationFailure(.missingHeader, header: tsName, scheme: scheme, detail: "missing \(tsName) header")
        }
        guard !id.contains("."), !ts.contains(".") else {
            throw VerificationFailure(.malformedHeader, header: idName, scheme: scheme,
                                      detail: "\(idName) and \(tsName) must not contain '.'")
        }
        _ = try checkTimestamp(ts, header: tsName, scheme: scheme, now: now, tolerance: tolerance)
        // At most `maxEntries` entries are looked at: a sender lists one per secret it signs with (two while it
        // rotates), so more is refused before any of them is decoded.
        let entries = sig.split(separator: " ", maxSplits: Self.maxEntries, omittingEmptySubsequences: true)
        guard entries.count <= Self.maxEntries else {
            throw VerificationFailure(.malformedHeader, header: sigName, scheme: scheme,
                                      detail: "\(sigName) has more than \(Self.maxEntries) entries")
        }
        let candidates = entries.compactMap { entry -> [UInt8]? in
            guard entry.hasPrefix("v1,") else { return nil }  // unknown versions (v1a…) are skipped
            return ByteEncoding.unbase64(entry.dropFirst(3))
        }
        guard !candidates.isEmpty else {
            throw VerificationFailure(.malformedHeader, header: sigName, scheme: scheme,
                                      detail: "\(sigName) has no v1,<base64> entry")
        }
        let prefix = Array("\(id).\(ts).".utf8)
        // One MAC per secret, compared with every entry: the cost of refusing does not grow with the entries.
        let index = prefix.withUnsafeBytes { pre in keys.match(.sha256, parts: [pre, body], anyOf: candidates) }
        guard let index else {
            throw VerificationFailure(.mismatch, header: sigName, scheme: scheme,
                                      detail: "no v1 entry of \(sigName) matches under any configured secret")
        }
        return index
    }
}
