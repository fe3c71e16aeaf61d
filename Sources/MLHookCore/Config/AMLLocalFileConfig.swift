import Yams

/// The optional configuration file of `mlhook aml-local --config FILE`.
public struct AMLLocalFileConfig: Sendable, Equatable {
    /// A service principal that may get tokens, in addition to the seeded one.
    public struct Principal: Sendable, Equatable {
        public var tenantID: String
        public var clientID: String
        public var secret: SecretReference

        public init(tenantID: String, clientID: String, secret: SecretReference) {
            self.tenantID = tenantID
            self.clientID = clientID
            self.secret = secret
        }
    }

    public var principals: [Principal] = []

    /// Parses the file; unknown keys are errors, and secrets are references.
    public static func parse(yaml: String, file: String) throws(ConfigError) -> AMLLocalFileConfig {
        let reader = YAMLReader(file: file)
        var config = AMLLocalFileConfig()
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw ConfigError([ConfigIssue(file: file, line: 0, key: "", message: "invalid YAML: \(error)")])
        }
        if let root, let top = reader.mapping(root, "") {
            if let n = top.node("principals"), let items = reader.sequence(n, "principals") {
                for (i, item) in items.enumerated() {
                    guard let m = reader.mapping(item, "principals[\(i)]") else { continue }
                    let tenant = m.requiredString("tenant_id")
                    let client = m.requiredString("client_id")
                    var secret: SecretReference?
                    if let sn = m.node("client_secret") {
                        secret = MLHookConfig.parseSecretReference(sn, path: m.keyPath("client_secret"), reader: reader)
                    } else {
                        reader.error(m.node, m.keyPath("client_secret"), "is required ({ env: NAME } or { file: PATH })")
                    }
                    m.finish()
                    if let tenant, let client, let secret {
                        config.principals.append(Principal(tenantID: tenant, clientID: client, secret: secret))
                    }
                }
            }
            top.finish()
        }
        guard reader.issues.isEmpty else { throw ConfigError(reader.issues) }
        return config
    }
}
