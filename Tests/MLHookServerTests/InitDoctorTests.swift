import Foundation
import TestSupport
import Testing

/// `mlhook init` writes a configuration that `config check` accepts and `serve` runs; `mlhook doctor` says whether
/// this machine can run it, and names the cause when it cannot.
@Suite struct InitDoctorTests {
    @Test func theStarterConfigurationChecksServesAndTrainsAPush() async throws {
        let dir = try TemporaryDirectory("mlhook-init")
        defer { dir.remove() }
        let made = try await runMLHook(["init"], directory: dir.path)
        #expect(made.status == 0 && made.output.contains("wrote mlhook.yaml"), "\(made.output)")
        let again = try await runMLHook(["init"], directory: dir.path)
        #expect(again.status == 1 && again.output.contains("mlhook.yaml exists; pass --force to replace it"), "\(again.output)")
        let checked = try await runMLHook(["config", "check", "mlhook.yaml"], directory: dir.path)
        #expect(checked.status == 0 && checked.output.contains("mlhook.yaml: ok"), "\(checked.output)")

        let env = ["MLHOOK_LISTEN": "127.0.0.1:\(QuickStartTests().freePort())"]
        let doctor = try await runMLHook(["doctor", "--config", "mlhook.yaml"], environment: env, directory: dir.path)
        #expect(doctor.status == 0 && doctor.output.contains("mlhook doctor: all 7 checks passed"), "\(doctor.output)")
        #expect(doctor.output.contains("ok    bubblewrap: ") && doctor.output.contains("ok    python: ") && doctor.output.contains("ok    store: "))

        let server = try await ServerProcess(arguments: ["serve", "--config", "mlhook.yaml"], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        let own = dir.file("my-model")
        _ = try await ProviderEndToEndTests().makeRepo(own, script: "import os\nos.makedirs('outputs/model', exist_ok=True)\nopen('outputs/model/w', 'w').write('1')\n")
        let sent = try await runMLHook(["send", "github", "push", "--repo", own, "--config", "mlhook.yaml", "--wait", "--timeout", "60"],
                                       environment: env, directory: dir.path)
        #expect(sent.status == 0 && sent.output.contains("submit_job: succeeded"), "\(sent.output)\n--- server ---\n\(server.log.suffix(1500))")
        let models = try await runMLHook(["aml", "models", "ls", "--v2", "--name", "my-model", "--config", "mlhook.yaml"], environment: env, directory: dir.path)
        #expect(models.output.contains("my-model:1"), "the job's outputs/model became a model version: \(models.output)")
    }

    /// A bubblewrap that cannot build a sandbox (a stand-in that exits 1, first on PATH, as a container that forbids
    /// namespaces would make it): doctor fails, naming it and why.
    @Test func doctorFailsNamingTheCauseWhenBubblewrapCannotConfine() async throws {
        let dir = try TemporaryDirectory("mlhook-doctor")
        defer { dir.remove() }
        _ = try await runMLHook(["init"], directory: dir.path)
        try FileManager.default.createDirectory(atPath: dir.file("stub"), withIntermediateDirectories: true)
        try "#!/bin/sh\nexit 1\n".write(toFile: dir.file("stub/bwrap"), atomically: false, encoding: .utf8)
        chmod(dir.file("stub/bwrap"), 0o755)
        let env = ["PATH": dir.file("stub") + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                   "MLHOOK_LISTEN": "127.0.0.1:\(QuickStartTests().freePort())"]
        let doctor = try await runMLHook(["doctor", "--config", "mlhook.yaml"], environment: env, directory: dir.path)
        #expect(doctor.status == 1, "\(doctor.output)")
        #expect(doctor.output.contains("FAIL  bubblewrap: runs must be confined (azureml.local.confinement: required), but \(dir.file("stub/bwrap")) cannot build a sandbox here (exit 1)"),
                "\(doctor.output)")
        #expect(doctor.output.contains("mlhook doctor: 1 of 7 checks failed"), "\(doctor.output)")
        // And serve refuses to start with it, for the same reason, rather than run pushed code unconfined.
        let serve = try await runMLHook(["serve", "--config", "mlhook.yaml"], environment: env, directory: dir.path)
        #expect(serve.status != 0 && serve.output.contains("cannot build a sandbox here (exit 1)"), "\(serve.output)")
    }
}
