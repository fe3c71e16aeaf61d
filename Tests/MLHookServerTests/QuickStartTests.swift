import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The README's first command: `mlhook serve` on embedded defaults shows the whole loop with the bundled sample.
@Suite struct QuickStartTests {
    /// A port that was free a moment ago (the sample's callback URL needs the real port, not 0).
    func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    @Test func embeddedDefaultsRunTheSampleFromPushToVerifiedCallback() async throws {
        let dir = try TemporaryDirectory("mlhook-quickstart")
        defer { dir.remove() }
        let server = try await ServerProcess(arguments: ["serve"], environment: ["MLHOOK_LISTEN": "127.0.0.1:\(freePort())"], directory: dir.path)
        defer { server.signal(SIGTERM) }
        #expect(try await eventually { server.log.contains("sample: done.") }, "\(server.log.suffix(2000))")
        let log = server.log
        for step in ["sample: sending a signed GitHub push of mlhook/sample@", "sample: 202 ", "sample: event planned",
                     "sample: job sample-train start_run: succeeded", "signature verified): job succeeded, run mlhook_job_", "sample: callback delivered"] {
            #expect(log.contains(step), "missing: \(step)")
        }
        #expect(FileManager.default.fileExists(atPath: dir.file(".mlhook/secrets/github")))
        #expect(FileManager.default.fileExists(atPath: dir.file(".mlhook/aml-local/credentials.json")))
        let secret = try String(contentsOfFile: dir.file(".mlhook/secrets/github"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!log.contains(secret), "the generated secret is never logged")
    }
}
