import Foundation
import HTTPTypes

/// Verifies hex HMACs of the raw body carried in one header, with or without an algorithm prefix:
/// GitHub (`X-Hub-Signature-256: sha256=…`, legacy `X-Hub-Signature: sha1=…`), Gitea/Forgejo
/// (`X-Gitea-Signature: …`, no prefix) and Bitbucket Cloud/Data Center (`X-Hub-Signature: sha256=…`,
/// algorithm from the prefix).
public struct HexSignatureVerifier: WebhookVerifier {
    /// One header the scheme reads, tried in order.
    struct Slot: Sendable {
        let name: HTTPField.Name
        /// nil: the algorithm comes from the `alg=` prefix; otherwise the fixed algorithm.
        let algorithm: HMACAlgorithm?
        /// Whether the value carries a `alg=` prefix.
        let prefixed: Bool
    }

    public let scheme: String
    private let slots: [Slot]
    private let refusedLegacy: HTTPField.Name?
    private let keys: KeyRing
    private let allowed: Set<HMACAlgorithm>

    private init(scheme: String, slots: [Slot], refusedLegacy: HTTPField.Name? = nil,
                 secrets: [[UInt8]], allowed: Set<HMACAlgorithm>) throws(SigningError) {
        self.scheme = scheme
        self.slots = slots
        self.refusedLegacy = refusedLegacy
        self.allowed = allowed
        self.keys = try KeyRing(secrets: secrets, algorithms: Array(allowed))
    }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`; the SHA-1 header only when `allowSHA1` is set.
    public static func github(secrets: [WebhookSecret], allowSHA1: Bool = false) throws(SigningError) -> Self {
        var slots = [Slot(name: .known("X-Hub-Signature-256"), algorithm: .sha256, prefixed: true)]
        if allowSHA1 { slots.append(Slot(name: .known("X-Hub-Signature"), algorithm: .sha1, prefixed: true)) }
        return try Self(scheme: "github", slots: slots,
                        refusedLegacy: allowSHA1 ? nil : .known("X-Hub-Signature"),
                        secrets: secrets.map(\.bytes), allowed: allowSHA1 ? [.sha256, .sha1] : [.sha256])
    }

    /// Gitea, Forgejo and Gogs: hex HMAC-SHA256 with no prefix.
    public static func gitea(secrets: [WebhookSecret]) throws(SigningError) -> Self {
        let names = ["X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature"]
        return try Self(scheme: "gitea",
                        slots: names.map { Slot(name: .known($0), algorithm: .sha256, prefixed: false) },
                        secrets: secrets.map(\.bytes), allowed: [.sha256])
    }

    /// Bitbucket Cloud and Data Center: `X-Hub-Signature: <alg>=<hex>`, algorithm from the prefix.
    public static func bitbucket(secrets: [WebhookSecret]) throws(SigningError) -> Self {
        try Self(scheme: "bitbucket",
                 slots: [Slot(name: .known("X-Hub-Signature"), algorithm: nil, prefixed: true)],
                 secrets: secrets.map(\.bytes), allowed: [.sha1, .sha256, .sha512])
    }

    public func verify(headers: HTTPFields, body: UnsafeRawBufferPointer, now: Date) throws(VerificationFailure) -> Int {
        guard let (slot, value) = slots.lazy.compactMap({ s in headers[s.name].map { (s, $0) } }).first else {
            let expected = slots[0].name.rawName
            if let legacy = refusedLegacy, headers[legacy] != nil {
                throw VerificationFailure(.algorithmNotAllowed, header: expected, scheme: scheme,
                    detail: "only the legacy SHA-1 \(legacy.rawName) was sent; send \(expected) or set allow_sha1: true on the source")
            }
            throw VerificationFailure(.missingHeader, header: expected, scheme: scheme,
                                      detail: "missing \(expected) header")
        }
        let header = slot.name.rawName
        var hexPart = Substring(value)
        var algorithm = slot.algorithm
        if slot.prefixed {
            guard let eq = value.firstIndex(of: "=") else {
                throw VerificationFailure(.malformedHeader, header: header, scheme: scheme,
                                          detail: "\(header) must look like <algorithm>=<hex>")
            }
            let prefix = value[..<eq].lowercased()
            guard let named = HMACAlgorithm(rawValue: prefix) else {
                throw VerificationFailure(.algorithmNotAllowed, header: header, scheme: scheme,
                                          detail: "\(header) names unsupported algorithm \"\(prefix.prefix(16))\"")
            }
            if let fixed = algorithm, fixed != named {
                throw VerificationFailure(.algorithmNotAllowed, header: header, scheme: scheme,
                                          detail: "\(header) must be \(fixed.rawValue)=<hex>, got \(named.rawValue)=")
            }
            algorithm = named
            hexPart = value[value.index(after: eq)...]
        }
        guard let algorithm, allowed.contains(algorithm) else {
            throw VerificationFailure(.algorithmNotAllowed, header: header, scheme: scheme,
                                      detail: "\(header) algorithm is not accepted by this source")
        }
        guard let mac = ByteEncoding.unhex(hexPart.trimmingCharacters(in: .whitespaces)),
              mac.count == algorithm.byteCount else {
            throw VerificationFailure(.malformedHeader, header: header, scheme: scheme,
                detail: "\(header) must carry \(algorithm.byteCount * 2) hex digits of HMAC-\(algorithm.rawValue.uppercased())")
        }
        guard let index = keys.match(algorithm, parts: [body], expected: mac) else {
            throw VerificationFailure(.mismatch, header: header, scheme: scheme,
                detail: "\(header) does not match HMAC-\(algorithm.rawValue.uppercased()) of the body under any configured secret")
        }
        return index
    }
}
