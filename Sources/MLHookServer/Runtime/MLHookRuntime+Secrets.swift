import Foundation
import MLHookCore
import Signing

extension MLHookRuntime {
    /// Resolves every secret the configuration references besides the sources' — the admin token, each action's
    /// secret (`score.key`, `start_run.token`), each callback's (`url.secret`, `github_status.token`) and, in cloud
    /// mode, the Azure client secret — so a missing or empty one stops `serve` at start and fails `config check`,
    /// naming the file and the line, instead of failing at first use. Each is still read again at use (rotation).
    ///
    /// A `file` secret with `create: true` is not created here: it is made on first use.
    /// - Parameters:
    ///   - file: The configuration file, for messages (`<embedded defaults>` without one).
    /// - Throws: `ConfigError` with every problem.
    public static func checkSecrets(_ config: MLHookConfig, file: String, environment: [String: String]) throws(ConfigError) {
        let resolver = SecretResolver(environment: environment)
        var issues: [ConfigIssue] = []
        func check(_ ref: SecretReference, key: String, line: Int) {
            if case .file(_, true) = ref { return }
            do { _ = try resolver.resolve(ref, key: key) } catch {
                issues += error.issues.map { ConfigIssue(file: file, line: line, key: $0.key, message: $0.message) }
            }
        }
        if config.admin.token != nil {
            do { _ = try resolveAdminToken(config, environment: environment) } catch {
                issues += error.issues.map { ConfigIssue(file: file, line: config.admin.tokenLine.value, key: $0.key, message: $0.message) }
            }
        }
        if config.azureml.mode == .cloud, let secret = config.azureml.cloud.clientSecret {
            check(secret, key: "azureml.cloud.client_secret", line: config.azureml.cloud.clientSecretLine.value)
        }
        for (name, workspace) in config.azureml.workspaces.sorted(by: { $0.key < $1.key }) {
            if let secret = workspace.clientSecret { check(secret, key: "azureml.workspaces.\(name).client_secret", line: workspace.clientSecretLine.value) }
        }
        for rule in config.rules {
            for (i, action) in rule.actions.enumerated() {
                guard let ref = action.secret else { continue }
                let name = action.type == .score ? "key" : "token"
                check(ref, key: "rules[\(rule.name)].actions[\(i)].\(action.type.rawValue).\(name)", line: action.line)
            }
            for (i, target) in rule.callbacks.enumerated() {
                let line = i < rule.callbackLines.count ? rule.callbackLines[i] : rule.line
                switch target {
                case .url(_, let secret): check(secret, key: "rules[\(rule.name)].callback[\(i)].url.secret", line: line)
                case .githubStatus(let token, _, _): check(token, key: "rules[\(rule.name)].callback[\(i)].github_status.token", line: line)
                case .slack: break
                }
            }
        }
        if !issues.isEmpty { throw ConfigError(issues) }
    }
}
