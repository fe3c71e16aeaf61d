import Foundation
import HTTPTypes

/// A configurable HMAC scheme for senders that follow no named convention.
///
/// The signature header carries `prefix + encode(HMAC(secret, signed string))`. The signed string is a
/// layout such as `{timestamp}.{body}` built from the raw body, the timestamp header and other headers.
public struct GenericHMACScheme: Sendable, Equatable {
    /// How the MAC is written in the header.
    public enum Encoding: String, Sendable, Equatable, CaseIterable { case hex, base64 }

    /// One piece of the signed-string layout.
    public enum Piece: Sendable, Equatable {
        case literal(String)
        case body
        case timestamp
        case header(String)
    }

    /// The header that carries the signature.
    public var header: String
    /// The digest.
    public var algorithm: HMACAlgorithm
    /// How the MAC is encoded.
    public var encoding: Encoding
    /// A literal before the MAC, such as `sha256=`.
    public var prefix: String
    /// The header carrying Unix seconds, checked against `tolerance` when set.
    public var timestampHeader: String?
    /// What is signed, in order.
    public var layout: [Piece]
    /// The replay window in seconds.
    public var tolerance: TimeInterval

    /// Creates a scheme.
    /// - Parameter signedString: A layout with `{body}`, `{timestamp}` and `{header:Name}` placeholders;
    ///   defaults to `{timestamp}.{body}` with a timestamp header and `{body}` without.
    /// - Throws: `GenericLayoutError` when the layout has an unknown placeholder, no `{body}`, or uses
    ///   `{timestamp}` without a timestamp header.
    public init(header: String, algorithm: HMACAlgorithm = .sha256, encoding: Encoding = .hex, prefix: String = "",
                timestampHeader: String? = nil, signedString: String? = nil,
                tolerance: TimeInterval = 300) throws(GenericLayoutError) {
        guard HTTPField.Name(header) != nil else { throw GenericLayoutError("header \"\(header)\" is not a valid header name") }
        if let t = timestampHeader, HTTPField.Name(t) == nil {
            throw GenericLayoutError("timestamp_header \"\(t)\" is not a valid header name")
        }
        self.header = header
        self.algorithm = algorithm
        self.encoding = encoding
        self.prefix = prefix
        self.timestampHeader = timestampHeader
        self.tolerance = tolerance
        self.layout = try Self.parse(signedString ?? (timestampHeader == nil ? "{body}" : "{timestamp}.{body}"))
        if layout.contains(.timestamp), timestampHeader == nil {
            throw GenericLayoutError("signed_string uses {timestamp} but no timestamp_header is set")
        }
        if timestampHeader != nil, !layout.contains(.timestamp) {
            // The sender could change the timestamp freely: the replay window would protect nothing.
            throw GenericLayoutError("timestamp_header is set but signed_string has no {timestamp}, so the timestamp is not signed")
        }
    }

    static func parse(_ text: String) throws(GenericLayoutError) -> [Piece] {
        var pieces: [Piece] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            if open > rest.startIndex { pieces.append(.literal(String(rest[..<open]))) }
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw GenericLayoutError("signed_string has an unclosed '{'")
            }
            let name = rest[rest.index(after: open)..<close]
            switch name {
            case "body": pieces.append(.body)
            case "timestamp": pieces.append(.timestamp)
            case _ where name.hasPrefix("header:") && HTTPField.Name(String(name.dropFirst(7))) != nil:
                pieces.append(.header(String(name.dropFirst(7))))
            default:
                throw GenericLayoutError("signed_string placeholder {\(name)} is unknown; use {body}, {timestamp} or {header:Name}")
            }
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { pieces.append(.literal(String(rest))) }
        guard pieces.contains(.body) else { throw GenericLayoutError("signed_string must contain {body}") }
        return pieces
    }

    /// The bytes before and after the body in the signed string, given header values.
    func surroundings(timestamp: String?, header lookup: (String) -> String?) -> (before: [UInt8], after: [UInt8])? {
        var before: [UInt8] = [], after: [UInt8] = []
        var seenBody = false
        for piece in layout {
            let bytes: [UInt8]
            switch piece {
            case .body: seenBody = true; continue
            case .literal(let s): bytes = Array(s.utf8)
            case .timestamp: guard let timestamp else { return nil }; bytes = Array(timestamp.utf8)
            case .header(let name): guard let v = lookup(name) else { return nil }; bytes = Array(v.utf8)
            }
            if seenBody { after += bytes } else { before += bytes }
        }
        return (before, after)
    }
}

/// An invalid generic scheme; the message names the key at fault.
public struct GenericLayoutError: Error, Equatable, CustomStringConvertible {
    /// What is wrong with the layout.
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Verifies a `GenericHMACScheme`.
public struct GenericHMACVerifier: WebhookVerifier {
    public let scheme = "generic"
    private let config: GenericHMACScheme
    private let keys: KeyRing

    /// Creates the verifier.
    public init(scheme: GenericHMACScheme, secrets: [WebhookSecret]) throws(SigningError) {
        self.config = scheme
        self.keys = try KeyRing(secrets: secrets.map(\.bytes), algorithms: [scheme.algorithm])
    }

    public func verify(headers: HTTPFields, body: UnsafeRawBufferPointer, now: Date) throws(VerificationFailure) -> Int {
        let h = config.header
        guard let value = headers[.known(h)] else {
            throw VerificationFailure(.missingHeader, header: h, scheme: scheme, detail: "missing \(h) header")
        }
        var timestamp: String?
        if let tsHeader = config.timestampHeader {
            guard let ts = headers[.known(tsHeader)] else {
                throw VerificationFailure(.missingHeader, header: tsHeader, scheme: scheme, detail: "missing \(tsHeader) header")
            }
            _ = try checkTimestamp(ts, header: tsHeader, scheme: scheme, now: now, tolerance: config.tolerance)
            timestamp = ts
        }
        guard value.hasPrefix(config.prefix) else {
            throw VerificationFailure(.malformedHeader, header: h, scheme: scheme,
                                      detail: "\(h) must start with \"\(config.prefix)\"")
        }
        let encoded = value.dropFirst(config.prefix.count).trimmingCharacters(in: .whitespaces)
        let mac = config.encoding == .hex ? ByteEncoding.unhex(encoded) : ByteEncoding.unbase64(encoded)
        guard let mac, mac.count == config.algorithm.byteCount else {
            throw VerificationFailure(.malformedHeader, header: h, scheme: scheme,
                detail: "\(h) must carry a \(config.encoding.rawValue) HMAC-\(config.algorithm.rawValue.uppercased())")
        }
        guard let (before, after) = config.surroundings(timestamp: timestamp, header: { name in
            HTTPField.Name(name).flatMap { headers[$0] }
        }) else {
            throw VerificationFailure(.missingHeader, header: h, scheme: scheme,
                                      detail: "a header named in signed_string is missing")
        }
        let index = before.withUnsafeBytes { b in
            after.withUnsafeBytes { a in keys.match(config.algorithm, parts: [b, body, a], expected: mac) }
        }
        guard let index else {
            throw VerificationFailure(.mismatch, header: h, scheme: scheme,
                                      detail: "\(h) does not match under any configured secret")
        }
        return index
    }
}
