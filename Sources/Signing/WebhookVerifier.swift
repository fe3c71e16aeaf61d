import Foundation
import HTTPTypes

/// Checks that a webhook request was signed by a holder of one of the source's secrets.
///
/// Verification runs over the raw body bytes, before any parsing. Implementations compare decoded bytes in
/// constant time and fail closed: a missing header is a rejection.
public protocol WebhookVerifier: Sendable {
    /// The scheme's name as users configure it (`github`, `slack`, …), used in error messages.
    var scheme: String { get }

    /// Verifies a request.
    /// - Parameters:
    ///   - headers: The request headers.
    ///   - body: The raw body exactly as received.
    ///   - now: The current time (injected so tests can use published vectors with old timestamps).
    /// - Returns: The index of the secret that verified, so operators can see when an old secret stops being used.
    /// - Throws: `VerificationFailure` naming the header and scheme expected, never the expected MAC.
    func verify(headers: HTTPFields, body: UnsafeRawBufferPointer, now: Date) throws(VerificationFailure) -> Int
}

/// Why a request was not accepted as signed.
public struct VerificationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// A machine-readable reason, also used as a metrics label.
    public enum Reason: String, Sendable, Equatable {
        case missingHeader = "missing_header"
        case malformedHeader = "malformed_header"
        case mismatch = "signature_mismatch"
        case staleTimestamp = "stale_timestamp"
        case algorithmNotAllowed = "algorithm_not_allowed"
    }

    /// The reason.
    public let reason: Reason
    /// The header the scheme reads.
    public let header: String
    /// The scheme that was expected.
    public let scheme: String
    /// What the sender should do differently; never contains a secret or an expected MAC.
    public let detail: String

    /// Creates a failure.
    public init(_ reason: Reason, header: String, scheme: String, detail: String) {
        self.reason = reason
        self.header = header
        self.scheme = scheme
        self.detail = detail
    }

    public var description: String { "\(scheme) signature rejected (\(reason.rawValue)): \(detail)" }
}

extension HTTPFields {
    /// The first value of a header, by a name that is known to be valid.
    func first(_ name: HTTPField.Name) -> String? { self[name] }
}

extension HTTPField.Name {
    /// A header name from a literal known to be a valid token.
    static func known(_ name: String) -> HTTPField.Name {
        guard let n = HTTPField.Name(name) else { preconditionFailure("invalid header name literal \(name)") }
        return n
    }
}

/// Keys for every secret of a source, per algorithm, keyed once at start.
struct KeyRing: Sendable {
    private let keys: [HMACAlgorithm: [HMACKey]]

    /// Keys each secret for each algorithm.
    init(secrets: [[UInt8]], algorithms: [HMACAlgorithm]) throws(SigningError) {
        var keys: [HMACAlgorithm: [HMACKey]] = [:]
        for algorithm in algorithms {
            var list: [HMACKey] = []
            for secret in secrets { list.append(try HMACKey(algorithm: algorithm, key: secret)) }
            keys[algorithm] = list
        }
        self.keys = keys
    }

    /// The index of the first key whose MAC of `parts` equals `expected`, or nil.
    func match(_ algorithm: HMACAlgorithm, parts: [UnsafeRawBufferPointer], expected: [UInt8]) -> Int? {
        match(algorithm, parts: parts, anyOf: [expected])
    }

    /// The index of the first key whose MAC of `parts` equals any of `candidates`, or nil.
    ///
    /// Each key's MAC is computed once and compared with every candidate, so refusing a request costs one
    /// HMAC pass over the body per secret, however many candidates the sender listed.
    func match(_ algorithm: HMACAlgorithm, parts: [UnsafeRawBufferPointer], anyOf candidates: [[UInt8]]) -> Int? {
        guard let list = keys[algorithm] else { return nil }
        let candidates = candidates.filter { $0.count == algorithm.byteCount }
        guard !candidates.isEmpty else { return nil }
        for (index, key) in list.enumerated() {
            let mac = key.authenticationCode(parts: parts)
            // Every candidate is compared (no early exit), in constant time each.
            var matched = false
            for candidate in candidates where ConstantTime.equals(mac, candidate) { matched = true }
            if matched { return index }
        }
        return nil
    }

    /// The MAC of `parts` under the first key (the current one), for signing.
    func sign(_ algorithm: HMACAlgorithm, parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        keys[algorithm]?.first?.authenticationCode(parts: parts) ?? []
    }
}

/// Checks a timestamp header against a replay window.
///
/// Only a plain run of at most 12 ASCII digits is a timestamp (no sign, space, exponent or other digits):
/// anything else, however large or odd, is refused as malformed before any arithmetic, so no header value can
/// overflow the skew computation.
/// - Returns: The timestamp, in Unix seconds.
/// - Throws: `.malformedHeader` for anything but such digits, `.staleTimestamp` outside the window.
func checkTimestamp(
    _ raw: String, header: String, scheme: String, now: Date, tolerance: TimeInterval
) throws(VerificationFailure) -> Int {
    let utf8 = raw.utf8
    guard (1...12).contains(utf8.count), utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }), let ts = Int(raw) else {
        throw VerificationFailure(.malformedHeader, header: header, scheme: scheme,
                                  detail: "\(header) must be integer Unix seconds (digits only)")
    }
    let skew = now.timeIntervalSince1970 - Double(ts)
    guard abs(skew) <= tolerance else {
        // Both are below 10^12, so the skew fits an Int.
        throw VerificationFailure(.staleTimestamp, header: header, scheme: scheme,
                                  detail: "\(header) is \(Int(skew)) s from now; the window is ±\(Int(tolerance)) s")
    }
    return ts
}
