import Foundation
import Signing

/// Issues and checks bearer tokens: `aml.<expiry>.<client id>.<HMAC>`, keyed by a secret kept in the data
/// directory, so tokens survive a restart and expire on their own.
struct TokenIssuer: Sendable {
    private let key: HMACKey
    let lifetime: TimeInterval

    init(keyFile: String, lifetime: TimeInterval = 3600) throws {
        if !FileManager.default.fileExists(atPath: keyFile) {
            let bytes = ByteEncoding.hex(ConstantTime.randomBytes(32))
            FileManager.default.createFile(atPath: keyFile, contents: Data(bytes.utf8), attributes: [.posixPermissions: 0o600])
        }
        guard let data = FileManager.default.contents(atPath: keyFile), !data.isEmpty else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: keyFile])
        }
        key = try HMACKey(algorithm: .sha256, key: [UInt8](data))
        self.lifetime = lifetime
    }

    /// A new token for `clientID`, with its expiry.
    func issue(clientID: String, now: Date = Date()) -> (token: String, expiresOn: Int) {
        let expiry = Int(now.timeIntervalSince1970 + lifetime)
        let payload = "aml.\(expiry).\(clientID)"
        return (payload + "." + ByteEncoding.hex(key.authenticationCode(Array(payload.utf8))), expiry)
    }

    /// Hex HMAC of any text under the server key.
    func issueMAC(_ text: String) -> String { ByteEncoding.hex(key.authenticationCode(Array(text.utf8))) }

    /// Why a token is not acceptable, or nil when it is.
    func problem(with token: String, now: Date = Date()) -> String? {
        guard let dot = token.lastIndex(of: ".") else { return "The access token is malformed." }
        let payload = String(token[..<dot])
        guard let mac = ByteEncoding.unhex(token[token.index(after: dot)...]),
              ConstantTime.equals(mac, key.authenticationCode(Array(payload.utf8))) else {
            return "The access token signature is invalid."
        }
        let parts = payload.split(separator: ".")
        guard parts.count >= 3, let expiry = Int(parts[1]) else { return "The access token is malformed." }
        guard Double(expiry) > now.timeIntervalSince1970 else { return "The access token has expired." }
        return nil
    }
}
