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
        #expect(loaded.config.scheduler == defaults.scheduler)
        #expect(loaded.config.azureml == defaults.azureml)
        #expect(loaded.config.jobs == defaults.jobs)
        #expect(loaded.config.callbacks == defaults.callbacks)
        #expect(loaded.config.admin == defaults.admin)
        #expect(loaded.config.rules.isEmpty)
        var github = SourceConfig(name: "github", type: .github)
        github.secrets = [.env("GITHUB_WEBHOOK_SECRET")]
        #expect(loaded.config.sources == [github])
    }
}

/// The commented rules reference in config/mlhook.yaml is valid when uncommented.
@Suite struct DocumentedRulesTests {
    @Test func theCommentedRulesReferenceParses() throws {
        let text = try String(contentsOfFile: DocumentedConfigTests.path, encoding: .utf8)
        guard let start = text.range(of: "# rules:\n") else {
            Issue.record("no rules reference in config/mlhook.yaml")
            return
        }
        let reference = text[start.lowerBound...].split(separator: "\n").map { line in
            line.hasPrefix("# ") ? String(line.dropFirst(2)) : ""
        }.joined(separator: "\n")
        let yaml = "sources: [ { name: github, type: github, secrets: [ { env: X } ] } ]\n" + reference
            .replacingOccurrences(of: "https://…/", with: "https://example.com/")
        let rules = try MLHookConfig.parse(yaml: yaml, file: "reference").config.rules
        #expect(rules.count == 1 && rules[0].actions.count == 11 && rules[0].callbacks.count == 3)
    }
}
