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
}
