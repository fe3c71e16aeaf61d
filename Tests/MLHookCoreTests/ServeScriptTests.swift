import Foundation
import TestSupport
import Testing

/// `scripts/serve.sh`, the quick start's first command, in a copy of the tree with a stand-in `swift` and binary:
/// it starts the built binary at once when no source is newer (before: a no-op `swift build` of ~11 s at every
/// start), builds when one is, and says where the binary is and how to put it on PATH.
@Suite struct ServeScriptTests {
    @Test func itBuildsOnlyWhenASourceChanged() async throws {
        let dir = try TemporaryDirectory("mlhook-serve-sh")
        defer { dir.remove() }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
        let fm = FileManager.default
        for folder in ["scripts", "Sources/mlhook", ".build/release", "bin"] { try fm.createDirectory(atPath: dir.file(folder), withIntermediateDirectories: true) }
        try fm.copyItem(atPath: root + "/scripts/serve.sh", toPath: dir.file("scripts/serve.sh"))
        func script(_ path: String, _ text: String) throws {
            try ("#!/bin/sh\n" + text + "\n").write(toFile: dir.file(path), atomically: false, encoding: .utf8)
            chmod(dir.file(path), 0o755)
        }
        try script("scripts/bootstrap.sh", "exit 0")
        // `swift build` makes the binary; the binary says it served.
        try script("bin/swift", "echo swift \"$@\" >> \"$(dirname \"$0\")/../swift-calls\"\nprintf '#!/bin/sh\\necho served \"$@\"\\n' > .build/release/mlhook\nchmod +x .build/release/mlhook")
        try "// main\n".write(toFile: dir.file("Sources/mlhook/main.swift"), atomically: true, encoding: .utf8)
        try "// package\n".write(toFile: dir.file("Package.swift"), atomically: true, encoding: .utf8)
        let env = ["PATH": dir.file("bin") + ":/usr/bin:/bin"]
        func serve() async throws -> (status: Int32, output: String) {
            try await runProcessAsync("/bin/bash", [dir.file("scripts/serve.sh"), "--config", "x.yaml"], environment: env, directory: dir.path)
        }
        func builds() -> Int { ((try? String(contentsOfFile: dir.file("swift-calls"), encoding: .utf8)) ?? "").split(separator: "\n").count }

        let first = try await serve()
        #expect(first.status == 0 && first.output.contains("served serve --config x.yaml") && builds() == 1, "\(first.output)")
        #expect(first.output.contains("export PATH=\"\(dir.path)/.build/release:$PATH\""), "\(first.output)")
        // Nothing changed: no build.
        let second = try await serve()
        #expect(second.output.contains("served serve") && builds() == 1, "\(second.output)")
        // A source newer than the binary: built again.
        try await Task.sleep(for: .milliseconds(1100))
        try "// changed\n".write(toFile: dir.file("Sources/mlhook/main.swift"), atomically: true, encoding: .utf8)
        let third = try await serve()
        #expect(third.output.contains("served serve") && builds() == 2, "\(third.output)")
    }
}
