import COpenSSL

/// Comparisons whose running time does not depend on where the inputs differ.
public enum ConstantTime {
    /// Compares two byte sequences with `CRYPTO_memcmp` after a length check.
    ///
    /// The length check leaks only the length, which for MACs is public (fixed by the algorithm).
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count, !a.isEmpty else { return false }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }

    /// Compares two secrets of any length (bearer tokens, GitLab's `X-Gitlab-Token`) without leaking
    /// their length or content: both are reduced to HMAC-SHA256 under a per-process random key first.
    public static func tokenEquals(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        guard let key = tokenKey else { return false }
        let ma = key.authenticationCode(Array(a.utf8))
        let mb = key.authenticationCode(Array(b.utf8))
        return equals(ma, mb)
    }

    private static let tokenKey: HMACKey? = {
        var bytes = [UInt8](repeating: 0, count: 32)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, 32) } == 1
        return ok ? try? HMACKey(algorithm: .sha256, key: bytes) : nil
    }()

    /// Cryptographically random bytes from OpenSSL's CSPRNG.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) } == 1
        precondition(ok, "RAND_bytes failed: the system CSPRNG is unavailable")
        return bytes
    }
}
