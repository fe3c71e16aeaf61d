import Foundation
import TestSupport
import Testing

/// Guessing the admin token is slowed per client address, and only for that address: the admin API (which counted
/// nothing before) and the `/ui` sign-in (whose lockout counted every client together, so one guesser locked every
/// operator out). Through the real binary, with clients on two loopback addresses (curl --interface).
@Suite struct AdminThrottleTests {
    static let token = "admin-throttle-" + UUID().uuidString  // 51 characters

    /// curl from `source` (a 127.0.0.x address). - Returns: the HTTP status.
    func curl(_ source: String, _ url: String, bearer: String? = nil, form: String? = nil) async throws -> Int {
        var args = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", source, "--max-time", "10"]
        if let bearer { args += ["-H", "Authorization: Bearer \(bearer)"] }
        if let form { args += ["--data", form] }
        let (_, out) = try await runProcessAsync("/usr/bin/curl", args + [url])
        return Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    @Test func wrongTokensSlowTheirOwnClientOnly() async throws {
        let dir = try TemporaryDirectory("mlhook-admin-throttle")
        defer { dir.remove() }
        try """
            server: { listen: "127.0.0.1:0" }
            store: { path: "\(dir.file("mlhook.db"))" }
            azureml: { mode: cloud }
            admin: { token: { env: MLHOOK_ADMIN_TOKEN }, protect_metrics: true }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["MLHOOK_ADMIN_TOKEN": Self.token, "GH": "x"]
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        let base = "http://127.0.0.1:\(server.port)"
        // The admin API: 10 wrong tokens from 127.0.0.2, then even the right one waits there; 127.0.0.3 is served.
        for _ in 0..<10 { #expect(try await curl("127.0.0.2", base + "/api/v1/jobs", bearer: "guess") == 401) }
        #expect(try await curl("127.0.0.2", base + "/api/v1/jobs", bearer: Self.token) == 429)
        #expect(try await curl("127.0.0.3", base + "/api/v1/jobs", bearer: Self.token) == 200)
        // /ui sign-in: the same per address.
        for _ in 0..<10 { #expect(try await curl("127.0.0.4", base + "/ui/login", form: "token=guess") == 401) }
        #expect(try await curl("127.0.0.4", base + "/ui/login", form: "token=\(Self.token)") == 429)
        #expect(try await curl("127.0.0.5", base + "/ui/login", form: "token=\(Self.token)") == 303)
        // /metrics with admin.protect_metrics: the token, or 401.
        #expect(try await curl("127.0.0.6", base + "/metrics") == 401)
        #expect(try await curl("127.0.0.6", base + "/metrics", bearer: Self.token) == 200)
    }

    @Test func aShortAdminTokenIsRefusedByConfigCheckAndServe() async throws {
        let dir = try TemporaryDirectory("mlhook-admin-short")
        defer { dir.remove() }
        try """
            admin: { token: { env: MLHOOK_ADMIN_TOKEN } }
            azureml: { mode: cloud }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let short = ["MLHOOK_ADMIN_TOKEN": "hunter2-is-31-characters-long!!", "GH": "x"]
        let check = try await runMLHook(["config", "check", "--config", dir.file("mlhook.yaml")], environment: short, directory: dir.path)
        #expect(check.status != 0 && check.output.contains("admin.token") && check.output.contains("at least 32"), "\(check.output)")
        #expect(!check.output.contains("hunter2"), "the token is never printed")
        let serve = try await runProcessAsync("/usr/bin/timeout", ["30", try ServerProcess.binary(), "serve", "--config", dir.file("mlhook.yaml")],
                                              environment: short, directory: dir.path)
        #expect(serve.status != 0 && serve.output.contains("at least 32"), "\(serve.output)")
        let ok = try await runMLHook(["config", "check", "--config", dir.file("mlhook.yaml")],
                                     environment: ["MLHOOK_ADMIN_TOKEN": Self.token, "GH": "x"], directory: dir.path)
        #expect(ok.status == 0, "\(ok.output)")
    }
}
