import Foundation
import MLHookCore
import Testing

/// Every file in config/examples parses and validates.
@Suite struct ExampleConfigTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/examples").standardized

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
    }

    @Test func thereAreExamplesForEachUseCase() {
        #expect(Self.files == ["github-push-to-train.yaml", "gitlab-push-to-train.yaml", "nightly-retrain.yaml",
                               "pr-comment-retrain.yaml", "register-on-release.yaml", "slack-chatops.yaml"])
    }

    @Test(arguments: files)
    func exampleParses(_ name: String) throws {
        let path = Self.dir.appendingPathComponent(name).path
        let loaded = try MLHookConfig.parse(yaml: try String(contentsOfFile: path, encoding: .utf8), file: name)
        #expect(!loaded.config.rules.isEmpty)
        #expect(loaded.warnings.isEmpty)
    }
}
