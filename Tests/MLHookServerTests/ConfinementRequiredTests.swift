import Foundation
import TestSupport
import Testing

/// A sandbox that cannot confine is an error, not a fallback: with the default `confinement: required`, aml-local
/// (alone or embedded in `serve`) refuses to start when bubblewrap fails, naming why; `auto` starts, with a warning.
@Suite struct ConfinementRequiredTests {
    /// A directory whose `bwrap` fails, first on PATH.
    func brokenBubblewrap(in dir: TemporaryDirectory) throws -> [String: String] {
        let bin = dir.file("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n".write(toFile: bin + "/bwrap", atomically: false, encoding: .utf8)
        chmod(bin + "/bwrap", 0o755)
        return ["PATH": bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
    }

    /// `mlhook ARGS`, expected to refuse to start: stopped after 60 s if it does start, so a regression fails, not hangs.
    func refusal(_ arguments: [String], _ env: [String: String], in dir: TemporaryDirectory) async throws -> (status: Int32, output: String) {
        try await runProcessAsync("/usr/bin/timeout", ["60", try ServerProcess.binary()] + arguments, environment: env, directory: dir.path)
    }

    @Test func aBrokenSandboxStopsAMLLocalAndServeByDefault() async throws {
        let dir = try TemporaryDirectory("mlhook-confinement")
        defer { dir.remove() }
        let env = try brokenBubblewrap(in: dir)
        let alone = try await refusal(["aml-local", "--port", "0", "--data-dir", dir.file("aml")], env, in: dir)
        #expect(alone.status != 0 && alone.output.contains("runs must be confined") && alone.output.contains("cannot build a sandbox"), "\(alone.output)")
        let serve = try await refusal(["serve"], env.merging(["MLHOOK_NO_SAMPLE": "1"]) { $1 }, in: dir)
        #expect(serve.status != 0 && serve.output.contains("runs must be confined"), "\(serve.output)")
        // A bwrap that runs the program without confining it is refused too: the probe reports its capabilities.
        try "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done; shift; exec \"$@\"\n".write(toFile: dir.file("bin/bwrap"), atomically: false, encoding: .utf8)
        let fake = try await refusal(["aml-local", "--port", "0", "--data-dir", dir.file("aml")], env, in: dir)
        #expect(fake.status != 0 && fake.output.contains("without confining it"), "\(fake.output)")
        // auto: it starts, and says the runs are not confined.
        let auto = try await ServerProcess(arguments: ["aml-local", "--port", "0", "--data-dir", dir.file("aml-auto"), "--confinement", "auto"],
                                           environment: env, directory: dir.path)
        defer { auto.signal(SIGTERM) }
        #expect(auto.log.contains("NOT confined"), "\(auto.log)")
    }
}
