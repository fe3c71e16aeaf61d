import COpenSSL

/// Plain digests through OpenSSL.
public enum Digest {
    /// SHA-256 of `a` followed by `b`.
    public static func sha256(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = out.withUnsafeMutableBufferPointer { o in
            mlhook_sha256_2(a.baseAddress, a.count, b.baseAddress, b.count, o.baseAddress)
        }
        precondition(ok == 1, "EVP_Digest SHA-256 failed")
        return out
    }

    /// SHA-256 of a byte array, as lowercase hex.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { ByteEncoding.hex(sha256($0)) }
    }

    /// MD5 of a byte array (Azure Blob's `Content-MD5`; not for security).
    public static func md5(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        var size: UInt32 = 0
        let ok = bytes.withUnsafeBytes { b in
            out.withUnsafeMutableBufferPointer { o in EVP_Digest(b.baseAddress, b.count, o.baseAddress, &size, EVP_md5(), nil) }
        }
        precondition(ok == 1, "EVP_Digest MD5 failed")
        return out
    }
}

/// MD5 computed over bytes as they arrive (a blob upload streamed to disk). Not for security.
public final class MD5Stream {
    private let context: OpaquePointer

    public init() {
        context = EVP_MD_CTX_new()
        precondition(EVP_DigestInit_ex(context, EVP_md5(), nil) == 1, "EVP_DigestInit_ex MD5 failed")
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) == 1, "EVP_DigestUpdate failed")
    }

    /// The digest; the stream takes no more bytes after it.
    public func finish() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        let ok = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, nil) }
        precondition(ok == 1, "EVP_DigestFinal_ex failed")
        return out
    }
}
