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
