import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Every command and every option, argument and flag of the CLI says what it is (`--help`), read from the
/// binary's own description of its command tree.
@Suite struct CLIHelpTests {
    @Test func everyCommandAndOptionHasHelpText() async throws {
        let dumped = try await runMLHook(["--experimental-dump-help"], directory: FileManager.default.temporaryDirectory.path)
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dumped.output.utf8)) as? [String: Any])
        var missing: [String] = []
        var commands = 0
        func walk(_ command: [String: Any], _ path: [String]) {
            let path = path + [command["commandName"] as? String ?? "?"]
            commands += 1
            if path.count > 1, (command["abstract"] as? String ?? "").isEmpty { missing.append("command `\(path.dropFirst().joined(separator: " "))`") }
            for argument in command["arguments"] as? [[String: Any]] ?? [] where path.last != "help" {
                let names = (argument["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                if names.contains(where: { ["help", "version", "experimental-dump-help"].contains($0) }) { continue }
                if (argument["abstract"] as? String ?? "").isEmpty {
                    missing.append("`\(path.dropFirst().joined(separator: " "))` \(names.first.map { "--" + $0 } ?? argument["valueName"] as? String ?? "?")")
                }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, path) }
        }
        walk(try #require(root["command"] as? [String: Any]), [])
        #expect(commands > 30, "the whole tree was read")
        #expect(missing.isEmpty, "without help: \(missing.joined(separator: ", "))")
    }

    /// One error style: `mlhook: …` on stderr and exit 2 for a usage error, whatever command it is; help and the
    /// version exit 0.
    @Test func usageErrorsAreMlhookPrefixedAndExitTwo() async throws {
        let tmp = FileManager.default.temporaryDirectory.path
        for arguments in [["jobs", "ls", "--bogus"], ["nosuch"], ["jobs", "show"], ["aml", "computes", "scale", "x"], ["send"]] {
            let run = try await runMLHook(arguments, directory: tmp)
            #expect(run.status == 2 && run.output.hasPrefix("mlhook: ") && !run.output.contains("Error: "), "\(arguments): \(run.status) \(run.output)")
        }
        #expect(try await runMLHook(["--version"], directory: tmp).status == 0)
        #expect(try await runMLHook(["jobs", "--help"], directory: tmp).status == 0)
    }

    /// A failed operation says what failed in one `mlhook: …` line and exits 1: a port another program holds (before,
    /// eight `CancellationError` lines and `Error: bind(…) (errno: 98)`), an admin API that does not answer (before,
    /// `Error: connection reset (error set): Connection refused) (errno: 111)`).
    @Test func operationalErrorsNameTheAddressInOneLine() async throws {
        let dir = try TemporaryDirectory("mlhook-port-in-use")
        defer { dir.remove() }
        // A port held by a listener of our own.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(listen(fd, 1) == 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let serve = try await runMLHook(["serve"], environment: ["MLHOOK_LISTEN": "127.0.0.1:\(port)", "MLHOOK_NO_SAMPLE": "1"], directory: dir.path)
        #expect(serve.status == 1, "\(serve.output)")
        #expect(serve.output.trimmingCharacters(in: .whitespacesAndNewlines)
            == "mlhook: cannot listen on 127.0.0.1:\(port): the address is in use (another mlhook, or another program, holds the port): stop it, or set server.listen or MLHOOK_LISTEN",
            "\(serve.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.file(".mlhook/mlhook.db")), "nothing was started")

        // The same port, now closed: the admin API is not there.
        let unreachable = try await runMLHook(["jobs", "ls", "--server", "http://127.0.0.1:1"],
                                              environment: ["MLHOOK_ADMIN_TOKEN": String(repeating: "t", count: 40)], directory: dir.path)
        #expect(unreachable.status == 1 && unreachable.output.trimmingCharacters(in: .whitespacesAndNewlines)
            == "mlhook: cannot reach the admin API at http://127.0.0.1:1: connection refused", "\(unreachable.output)")
    }
}
