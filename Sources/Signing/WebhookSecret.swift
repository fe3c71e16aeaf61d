/// Secret bytes that never print themselves.
///
/// `description` and `debugDescription` are redacted so a secret that slips into a log line or an error
/// message shows as `<redacted>`.
public struct WebhookSecret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The raw bytes (the UTF-8 of the configured text).
    public let bytes: [UInt8]

    /// Wraps the UTF-8 bytes of a text secret.
    public init(_ text: String) { self.bytes = Array(text.utf8) }

    /// Wraps raw bytes.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The secret as text (for headers such as `X-Gitlab-Token`, never for logs).
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }

    /// The key bytes of a Standard Webhooks secret: `whsec_` stripped, then base64-decoded.
    /// - Throws: `SigningError.invalidBase64Key` when the rest is not base64, `.emptyKey` when empty.
    public func standardWebhooksKey() throws(SigningError) -> [UInt8] {
        var body = Substring(text)
        if body.hasPrefix("whsec_") { body = body.dropFirst(6) }
        guard let key = ByteEncoding.unbase64(body) else { throw SigningError.invalidBase64Key }
        guard !key.isEmpty else { throw SigningError.emptyKey }
        return key
    }
}
