import COpenSSL
import Foundation

/// A self-signed certificate and its private key, made with libcrypto (P-256, SHA-256), for servers that need
/// TLS on loopback with no CA (aml-local's HTTPS listener). The certificate is its own CA, so a client trusts it
/// by using the certificate file as its CA bundle (`REQUESTS_CA_BUNDLE`, `curl --cacert`).
public struct SelfSignedCertificate: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String

    /// Makes a new key pair and certificate.
    /// - Parameters:
    ///   - commonName: The subject's CN.
    ///   - dnsNames: subjectAltName DNS entries.
    ///   - ipAddresses: subjectAltName IP entries.
    ///   - days: Validity from now.
    /// - Returns: nil when libcrypto fails.
    public static func make(commonName: String, dnsNames: [String], ipAddresses: [String], days: Int = 825) -> SelfSignedCertificate? {
        let san = (dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }).joined(separator: ",")
        var cert: UnsafeMutablePointer<CChar>?
        var key: UnsafeMutablePointer<CChar>?
        guard mlhook_self_signed(commonName, san, Int32(days), &cert, &key) == 1, let cert, let key else { return nil }
        defer { free(cert); free(key) }
        return SelfSignedCertificate(certificatePEM: String(cString: cert), privateKeyPEM: String(cString: key))
    }
}
