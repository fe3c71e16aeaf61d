import Foundation
import MLHookServer
import TestSupport
import Testing

/// The `MLHOOK_*` variables that override configuration keys.
@Suite struct EnvironmentOverrideTests {
    /// `MLHOOK_ADMIN_TOKEN` alone turns on the admin API and `/ui` on embedded defaults (before: both stayed off,
    /// and `--server` had nothing to talk to).
    @Test func theAdminTokenAloneTurnsOnTheAdminAPIAndTheStatusPage() async throws {
        let dir = try TemporaryDirectory("mlhook-env-admin")
        defer { dir.remove() }
        let token = String(repeating: "a1", count: 20)
        let env = ["MLHOOK_LISTEN": "127.0.0.1:\(QuickStartTests().freePort())", "MLHOOK_NO_SAMPLE": "1", "MLHOOK_ADMIN_TOKEN": token]
        let server = try await ServerProcess(arguments: ["serve"], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        let base = "http://127.0.0.1:\(server.port)"
        func status(_ args: [String]) async throws -> String {
            try await runProcessAsync("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"] + args).1
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try await status([base + "/ui/login"]) == "200")
        #expect(try await status(["-H", "Authorization: Bearer \(token)", base + "/api/v1/jobs"]) == "200")
        #expect(try await status(["-H", "Authorization: Bearer wrong-token-wrong-token-wrong-token", base + "/api/v1/jobs"]) == "401")
        let listed = try await runMLHook(["jobs", "ls", "--server", base], environment: env, directory: dir.path)
        #expect(listed.status == 0, "\(listed.output)")
    }

    /// Every override is named where a user looks for it: the commented config file and the README.
    @Test func everyOverrideIsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        let config = try String(contentsOf: root.appendingPathComponent("config/mlhook.yaml"), encoding: .utf8)
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let header = config.split(separator: "\n").prefix { $0.hasPrefix("#") }.joined(separator: "\n")
        let readmeLine = readme.components(separatedBy: "**Environment overrides:**").dropFirst().first?.components(separatedBy: "\n- ").first ?? ""
        for (variable, _) in ConfigLoader.overrides {
            #expect(header.contains(variable), "config/mlhook.yaml's header does not list \(variable)")
            #expect(readmeLine.contains(variable), "the README's environment overrides do not list \(variable)")
        }
    }

    /// `serve --listen` wins over the file and MLHOOK_LISTEN (and the sample calls back on that port).
    @Test func serveListenWinsOverTheFileAndTheEnvironment() async throws {
        let dir = try TemporaryDirectory("mlhook-listen")
        defer { dir.remove() }
        let port = QuickStartTests().freePort()
        let server = try await ServerProcess(arguments: ["serve", "--listen", "127.0.0.1:\(port)"],
                                             environment: ["MLHOOK_LISTEN": "127.0.0.1:1", "MLHOOK_NO_SAMPLE": "1"], directory: dir.path)
        defer { server.signal(SIGTERM) }
        #expect(server.port == port)
        let bad = try await runMLHook(["serve", "--listen", "nope"], directory: dir.path)
        #expect(bad.status == 2 && bad.output.contains("mlhook: --listen: expected host:port"), "\(bad.output)")
    }
}
