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
        #expect(Self.files == ["github-push-to-train-v2.yaml", "github-push-to-train.yaml", "gitlab-push-to-train.yaml", "nightly-retrain.yaml",
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

/// The README's configuration examples, as printed: each `yaml` block parses (a block of rules alone, with the
/// sources the README's first block and its rules name).
@Suite struct ReadmeConfigTests {
    @Test func everyYAMLBlockOfTheReadmeParses() throws {
        let readme = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../README.md"),
                                encoding: .utf8)
        let blocks = readme.components(separatedBy: "```yaml\n").dropFirst().compactMap { $0.components(separatedBy: "```").first }
        #expect(blocks.count >= 2)
        let sources = "sources:\n  - { name: github, type: github, secrets: [ { env: A } ] }\n  - { name: slack, type: slack, secrets: [ { env: B } ] }\n"
        for (i, block) in blocks.enumerated() {
            let yaml = block.contains("sources:") ? block : sources + block
            #expect(throws: Never.self, "README yaml block \(i + 1)") { _ = try MLHookConfig.parse(yaml: yaml, file: "README block \(i + 1)") }
        }
    }
}
