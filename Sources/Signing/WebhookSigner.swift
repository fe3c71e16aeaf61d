import Foundation

/// Builds the headers a sender would attach, for every scheme mlhook verifies.
///
/// Used by callbacks (Standard Webhooks), by `mlhook send`, by the benchmark and by tests. The first secret
/// of a source is the one that signs.
public enum WebhookSigner {
    /// A header name and value.
    public typealias Header = (name: String, value: String)

    /// GitHub: `X-Hub-Signature-256` and the legacy SHA-1 `X-Hub-Signature`.
    public static func github(secret: WebhookSecret, body: [UInt8]) throws(SigningError) -> [Header] {
        [("X-Hub-Signature-256", "sha256=" + ByteEncoding.hex(try mac(.sha256, secret.bytes, [], body))),
         ("X-Hub-Signature", "sha1=" + ByteEncoding.hex(try mac(.sha1, secret.bytes, [], body)))]
    }

    /// Gitea/Forgejo: `X-Gitea-Signature` (hex, no prefix).
    public static func gitea(secret: WebhookSecret, body: [UInt8]) throws(SigningError) -> [Header] {
        [("X-Gitea-Signature", ByteEncoding.hex(try mac(.sha256, secret.bytes, [], body)))]
    }

    /// GitLab classic: the token itself.
    public static func gitlab(token: WebhookSecret) -> [Header] { [("X-Gitlab-Token", token.text)] }

    /// Bitbucket: `X-Hub-Signature: <alg>=<hex>`.
    public static func bitbucket(secret: WebhookSecret, body: [UInt8], algorithm: HMACAlgorithm = .sha256) throws(SigningError) -> [Header] {
        [("X-Hub-Signature", "\(algorithm.rawValue)=" + ByteEncoding.hex(try mac(algorithm, secret.bytes, [], body)))]
    }

    /// Slack v0.
    public static func slack(secret: WebhookSecret, body: [UInt8], timestamp: Int) throws(SigningError) -> [Header] {
        let sig = try mac(.sha256, secret.bytes, Array("v0:\(timestamp):".utf8), body)
        return [("X-Slack-Request-Timestamp", String(timestamp)), ("X-Slack-Signature", "v0=" + ByteEncoding.hex(sig))]
    }

    /// Standard Webhooks v1: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    public static func standard(secret: WebhookSecret, id: String, timestamp: Int, body: [UInt8]) throws(SigningError) -> [Header] {
        let sig = try mac(.sha256, try secret.standardWebhooksKey(), Array("\(id).\(timestamp).".utf8), body)
        return [("webhook-id", id), ("webhook-timestamp", String(timestamp)), ("webhook-signature", "v1," + ByteEncoding.base64(sig))]
    }

    /// A generic scheme; `headers` supplies values for `{header:Name}` pieces and is returned with the signature added.
    public static func generic(scheme: GenericHMACScheme, secret: WebhookSecret, body: [UInt8], timestamp: Int,
                               headers: [String: String] = [:]) throws(SigningError) -> [Header] {
        let ts = String(timestamp)
        guard let (before, after) = scheme.surroundings(timestamp: ts, header: { name in
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }) else { throw SigningError.openSSL("a header named in signed_string has no value") }
        let key = try HMACKey(algorithm: scheme.algorithm, key: secret.bytes)
        let m = before.withUnsafeBytes { b in body.withUnsafeBytes { bd in after.withUnsafeBytes { a in
            key.authenticationCode(parts: [b, bd, a]) } } }
        let encoded = scheme.encoding == .hex ? ByteEncoding.hex(m) : ByteEncoding.base64(m)
        var out: [Header] = headers.map { ($0.key, $0.value) }
        if let tsHeader = scheme.timestampHeader { out.append((tsHeader, ts)) }
        out.append((scheme.header, scheme.prefix + encoded))
        return out
    }

    private static func mac(_ alg: HMACAlgorithm, _ key: [UInt8], _ prefix: [UInt8], _ body: [UInt8]) throws(SigningError) -> [UInt8] {
        let k = try HMACKey(algorithm: alg, key: key)
        return prefix.withUnsafeBytes { p in body.withUnsafeBytes { b in k.authenticationCode(parts: [p, b]) } }
    }
}
