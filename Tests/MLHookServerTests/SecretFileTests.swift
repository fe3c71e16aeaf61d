import Foundation
import HTTPTypes
import MLHookCore
import MLHookServer
import Signing
import TestSupport
import Testing

/// A secret file may hold a random binary key: it is used byte for byte (text files keep their trimmed line).
@Suite struct SecretFileTests {
    @Test func aBinaryKeyFileVerifiesSignaturesMadeWithThoseBytes() throws {
        let dir = try TemporaryDirectory("mlhook-secret")
        defer { dir.remove() }
        // Not UTF-8 (0xFF, 0xC3 0x28), with a NUL and a trailing newline that are part of the key.
        let key: [UInt8] = [0xFF, 0x00, 0xC3, 0x28, 0x10, 0x80, 0x7F, 0x0A]
        try Data(key).write(to: URL(fileURLWithPath: dir.file("hmac.key")))
        let secret = try SecretResolver(environment: [:]).resolve(.file(dir.file("hmac.key"), create: false), key: "sources[github].secrets[0]")
        #expect(secret.bytes == key)
        let body = Array(#"{"zen":"binary"}"#.utf8)
        let headers = HTTPFields(try WebhookSigner.github(secret: WebhookSecret(bytes: key), body: body).map {
            HTTPField(name: HTTPField.Name($0.name)!, value: $0.value)
        })
        let verifier = try HexSignatureVerifier.github(secrets: [secret])
        #expect(throws: Never.self) { _ = try body.withUnsafeBytes { try verifier.verify(headers: headers, body: $0, now: Date()) } }

        try Data("text-secret\n".utf8).write(to: URL(fileURLWithPath: dir.file("text.key")))
        #expect(try SecretResolver(environment: [:]).resolve(.file(dir.file("text.key"), create: false), key: "k").bytes == Array("text-secret".utf8))
    }
}
