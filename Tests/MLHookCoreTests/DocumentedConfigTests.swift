import Foundation
import MLHookCore
import Testing

/// config/mlhook.yaml documents the defaults; it must parse and agree with the code.
@Suite struct DocumentedConfigTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../config/mlhook.yaml").standardized.path

    @Test func theDocumentedDefaultConfigParsesAndMatchesTheCodeDefaults() throws {
        let text = try String(contentsOfFile: Self.path, encoding: .utf8)
        let loaded = try MLHookConfig.parse(yaml: text, file: Self.path)
        let defaults = MLHookConfig()
        #expect(loaded.config.server == defaults.server)
        #expect(loaded.config.store == defaults.store)
        #expect(loaded.config.log == defaults.log)
        var github = SourceConfig(name: "github", type: .github)
        github.secrets = [.env("GITHUB_WEBHOOK_SECRET")]
        #expect(loaded.config.sources == [github])
    }
}
