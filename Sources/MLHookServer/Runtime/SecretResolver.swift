import Foundation
import MLHookCore
import Signing

/// Turns secret references into secret bytes at start.
public struct SecretResolver: Sendable {
    /// The process environment (injected for tests).
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// Resolves one reference. A file that is UTF-8 text is read as text with its line breaks at either end
    /// trimmed; any other file (a binary key) is used byte for byte.
    /// - Parameter key: The key path for messages, such as `sources[github].secrets[0]`.
    /// - Throws: `ConfigError` when the variable is unset, the file unreadable, or the value empty.
    public func resolve(_ ref: SecretReference, key: String) throws(ConfigError) -> WebhookSecret {
        func fail(_ message: String) -> ConfigError {
            ConfigError([ConfigIssue(file: "<secrets>", line: 0, key: key, message: message)])
        }
        let value: String
        switch ref {
        case .literal(let v):
            value = v
        case .env(let name):
            guard let v = environment[name] else { throw fail("environment variable \(name) is not set") }
            value = v
        case .file(let path, let create):
            if !FileManager.default.fileExists(atPath: path) && create {
                do { try Self.createSecretFile(path) } catch { throw fail("cannot create secret file \(path): \(error)") }
            }
            guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read secret file \(path)") }
            guard let text = String(data: data, encoding: .utf8) else {
                // Raw bytes (a random binary HMAC key): used exactly as stored, nothing trimmed.
                guard !data.isEmpty else { throw fail("the secret (\(ref)) is empty") }
                return WebhookSecret(bytes: [UInt8](data))
            }
            value = text.trimmingCharacters(in: .newlines)
        }
        guard !value.isEmpty else { throw fail("the secret (\(ref)) is empty") }
        return WebhookSecret(value)
    }

    /// Writes 32 random bytes as hex to a new file readable only by its owner.
    static func createSecretFile(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let secret = ByteEncoding.hex(ConstantTime.randomBytes(32)) + "\n"
        guard FileManager.default.createFile(atPath: path, contents: Data(secret.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown)
        }
    }
}
