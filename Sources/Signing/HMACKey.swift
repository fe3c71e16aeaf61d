import COpenSSL
import Synchronization

/// The HMAC digests mlhook verifies and signs with.
public enum HMACAlgorithm: String, Sendable, CaseIterable, Codable {
    case sha1
    case sha256
    case sha512

    /// OpenSSL's name for the digest.
    var openSSLName: String {
        switch self {
        case .sha1: "SHA1"
        case .sha256: "SHA256"
        case .sha512: "SHA512"
        }
    }

    /// Length of the MAC in bytes.
    public var byteCount: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha512: 64
        }
    }
}

/// A secret key bound to one HMAC algorithm, backed by a keyed OpenSSL `EVP_MAC_CTX` template.
///
/// Keying happens once; each MAC duplicates the template, which is measurably cheaper than the one-shot
/// `HMAC()` call (see shared/swift-stack.md) and makes one key shareable across threads.
public final class HMACKey: @unchecked Sendable {
    // @unchecked Sendable is safe: `template` is written only in init and freed in deinit. Every MAC
    // duplicates it (`EVP_MAC_CTX_dup` reads it) and updates only the duplicate, so concurrent callers
    // never mutate shared state.
    private let template: OpaquePointer
    /// The digest this key computes.
    public let algorithm: HMACAlgorithm

    /// Creates a key.
    /// - Parameters:
    ///   - algorithm: The digest.
    ///   - key: The secret bytes. Empty keys are refused: an empty secret is a configuration error.
    /// - Throws: `SigningError.emptyKey` or `SigningError.openSSL` when OpenSSL cannot key the MAC.
    public init(algorithm: HMACAlgorithm, key: [UInt8]) throws(SigningError) {
        guard !key.isEmpty else { throw SigningError.emptyKey }
        let ctx = key.withUnsafeBufferPointer { buf in
            mlhook_hmac_new(algorithm.openSSLName, buf.baseAddress, buf.count)
        }
        guard let ctx else { throw SigningError.openSSL("EVP_MAC_init failed for HMAC-\(algorithm.openSSLName)") }
        self.template = ctx
        self.algorithm = algorithm
    }

    deinit { mlhook_hmac_free(template) }

    /// Computes the MAC of the concatenation of `parts`, without copying them together.
    /// - Parameter parts: The message, in order.
    /// - Returns: The raw MAC bytes (empty only if OpenSSL fails to allocate, which never verifies).
    public func authenticationCode(parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        Self.passCounter?.add()
        guard let ctx = mlhook_hmac_begin(template) else { return [] }
        for part in parts where part.count > 0 {
            guard mlhook_hmac_update(ctx, part.baseAddress, part.count) == 1 else {
                mlhook_hmac_free(ctx)
                return []
            }
        }
        var out = [UInt8](repeating: 0, count: 64)
        let n = out.withUnsafeMutableBufferPointer { mlhook_hmac_finish(ctx, $0.baseAddress, $0.count) }
        return Array(out.prefix(n))
    }

    /// Computes the MAC of one byte buffer.
    public func authenticationCode(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        authenticationCode(parts: [message])
    }

    /// Computes the MAC of a byte array.
    public func authenticationCode(_ message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { authenticationCode(parts: [$0]) }
    }
}

extension HMACKey {
    /// Counts the MAC passes made in the current task, when set: the tests bound the work of refusing a
    /// request with it (one pass per secret, whatever the request carries).
    @TaskLocal package static var passCounter: PassCounter?

    /// A count of MAC passes.
    package final class PassCounter: Sendable {
        private let count = Mutex(0)
        package init() {}
        func add() { count.withLock { $0 += 1 } }
        /// Passes counted so far.
        package var value: Int { count.withLock { $0 } }
    }
}

/// Errors raised while preparing keys or signatures.
public enum SigningError: Error, Equatable, CustomStringConvertible {
    /// A secret resolved to zero bytes.
    case emptyKey
    /// A Standard Webhooks secret was not valid base64 after its `whsec_` prefix.
    case invalidBase64Key
    /// OpenSSL refused an operation.
    case openSSL(String)

    public var description: String {
        switch self {
        case .emptyKey: "the secret is empty"
        case .invalidBase64Key: "the secret is not base64 after its whsec_ prefix"
        case .openSSL(let what): "OpenSSL error: \(what)"
        }
    }
}
