import Foundation
import TestSupport
import Testing

/// Every secret a configuration references is checked by `config check` and at start, naming the file and the
/// line; before, an unset callback secret passed both and failed only at delivery.
@Suite struct SecretCheckTests {
    static let config = """
        sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
        rules:
          - name: train
            when: { kind: push }
            actions:
              - score: { uri: "https://example.com/score", key: { env: SCORING_KEY }, data: "[1]" }
            callback:
              - url: { url: "https://example.com/cb", secret: { env: CALLBACK_SECRET } }
        """

    @Test func anUnsetCallbackOrActionSecretFailsConfigCheckAndServeWithItsLine() async throws {
        let dir = try TemporaryDirectory("mlhook-secret-check")
        defer { dir.remove() }
        let path = dir.file("mlhook.yaml")
        try Self.config.write(toFile: path, atomically: true, encoding: .utf8)
        // The variables are not inherited from the test process: unset unless given.
        let base = ["GH": "gh", "SCORING_KEY": "", "CALLBACK_SECRET": ""].filter { !$0.value.isEmpty }
        let check = try await runMLHook(["config", "check", path], environment: base, directory: dir.path)
        #expect(check.status == 2, "\(check.output)")
        #expect(check.output.contains("\(path):6: rules[train].actions[0].score.key"), "\(check.output)")
        #expect(check.output.contains("\(path):8: rules[train].callback[0].url.secret"), "the callback's own line: \(check.output)")
        #expect(!check.output.contains("<secrets>"), "\(check.output)")
        // The same with --config, as every other command takes it; and serve refuses to start.
        #expect(try await runMLHook(["config", "check", "--config", path], environment: base, directory: dir.path).status == 2)
        let serve = try await runMLHook(["serve", "--config", path], environment: base, directory: dir.path)
        #expect(serve.status == 2 && serve.output.contains("CALLBACK_SECRET"), "\(serve.output)")
        // Set, both pass.
        let ok = try await runMLHook(["config", "check", "--config", path], environment: ["GH": "gh", "SCORING_KEY": "k", "CALLBACK_SECRET": "c"],
                               directory: dir.path)
        #expect(ok.status == 0 && ok.output.contains("ok"), "\(ok.output)")
    }

    /// Every unset secret at once, each at its own file and line: two sources' (before, the first failing source
    /// stopped the check and the rest were never looked at), the Azure client secret's and the admin token's
    /// (before, `<secrets>:` with no file or line).
    @Test func everyUnsetSecretIsListedWithItsFileAndLine() async throws {
        let dir = try TemporaryDirectory("mlhook-secret-all")
        defer { dir.remove() }
        let path = dir.file("mlhook.yaml")
        try """
            admin:
              token: { env: ADMIN }
            azureml:
              mode: cloud
              cloud:
                tenant_id: t
                client_id: c
                client_secret: { env: AZ }
                subscription_id: s
                resource_group: g
                workspace: w
            sources:
              - name: github
                type: github
                secrets: [ { env: GH } ]
              - name: gitlab
                type: gitlab
                secrets:
                  - { env: GL }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let check = try await runMLHook(["config", "check", "--config", path], directory: dir.path)
        #expect(check.status == 2, "\(check.output)")
        for expected in ["\(path):2: admin.token", "\(path):8: azureml.cloud.client_secret", "\(path):15: sources[github].secrets[0]",
                         "\(path):19: sources[gitlab].secrets[0]"] {
            #expect(check.output.contains(expected), "missing \(expected): \(check.output)")
        }
        #expect(!check.output.contains("<secrets>"), "\(check.output)")
        let serve = try await runMLHook(["serve", "--config", path], directory: dir.path)
        #expect(serve.status == 2 && serve.output.contains("\(path):2: admin.token") && serve.output.contains("\(path):19: sources[gitlab]"), "\(serve.output)")
    }
}
