import Foundation
import Signing
import Yams

/// A parsed configuration and the warnings worth logging at start.
public struct LoadedConfig: Sendable, Equatable {
    public var config: MLHookConfig
    public var warnings: [ConfigIssue]
}

extension MLHookConfig {
    /// The configuration `mlhook serve` uses with no `--config`: one GitHub source whose secret is generated
    /// on first start into `.mlhook/secrets/github` (mode 0600), a store in `.mlhook/`, loopback only, the
    /// embedded Azure-ML-compatible server, and the bundled sample: a rule that trains the sample repository
    /// (`mlhook/sample`) and calls back the service's own `/sample/callback`.
    public static let embeddedDefaultsYAML = embeddedDefaults(port: 8080)

    /// An `azureml.cloud` block, or one of `azureml.workspaces` (which may also say `api: v1|v2`).
    static func parseCloud(_ cm: MappingReader, reader: YAMLReader, named: Bool) -> AzureMLCloudConfig {
        var c = AzureMLCloudConfig()
        c.tenantID = cm.string("tenant_id")
        c.clientID = cm.string("client_id")
        if let sn = cm.node("client_secret") {
            c.clientSecret = parseSecretReference(sn, path: cm.keyPath("client_secret"), reader: reader)
            c.clientSecretLine = SourceLine(sn.mark?.line ?? 0)
        }
        c.subscriptionID = cm.string("subscription_id")
        c.resourceGroup = cm.string("resource_group")
        c.workspace = cm.string("workspace")
        c.authorityURL = cm.string("authority_url") ?? c.authorityURL
        c.armURL = cm.string("arm_url") ?? c.armURL
        c.armAPIVersion = cm.string("api_version") ?? c.armAPIVersion
        c.v2APIVersion = cm.string("v2_api_version") ?? c.v2APIVersion
        c.dataPlaneURL = cm.string("data_plane_url")
        if named, cm.has("api") { c.api = cm.choice("api", default: AzureMLConfig.API.v1) }
        cm.finish()
        return c
    }

    /// Parses and validates a YAML configuration.
    /// - Parameters:
    ///   - yaml: The file's text.
    ///   - file: The name used in error messages.
    /// - Returns: The typed configuration and its warnings.
    /// - Throws: `ConfigError` listing every problem with its line and key.
    public static func parse(yaml: String, file: String) throws(ConfigError) -> LoadedConfig {
        let reader = YAMLReader(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError([ConfigIssue(file: file, line: Self.line(of: error), key: "", message: "invalid YAML: \(Self.problem(of: error))")])
        } catch {
            throw ConfigError([ConfigIssue(file: file, line: 0, key: "", message: "invalid YAML: \(error)")])
        }
        var config = MLHookConfig()
        guard let root else {
            throw ConfigError([ConfigIssue(file: file, line: 0, key: "", message: "the file is empty; expected at least a sources: list")])
        }
        if let top = reader.mapping(root, "") {
            if let n = top.node("server"), let m = reader.mapping(n, "server") { config.server = parseServer(m) }
            if let n = top.node("store"), let m = reader.mapping(n, "store") { config.store = parseStore(m) }
            if let n = top.node("log"), let m = reader.mapping(n, "log") {
                config.log.level = m.choice("level", default: LogLevel.info)
                config.log.format = m.choice("format", default: LogFormat.text)
                m.finish()
            }
            if let n = top.node("sources"), let items = reader.sequence(n, "sources") {
                for (i, item) in items.enumerated() {
                    guard let m = reader.mapping(item, "sources[\(i)]") else { continue }
                    if let source = parseSource(m, reader: reader) {
                        if config.sources.contains(where: { $0.name == source.name }) {
                            reader.error(m.node("name"), "sources[\(i)].name", "duplicate source name \"\(source.name)\"")
                        }
                        config.sources.append(source)
                    }
                }
            } else if !top.has("sources") {
                reader.error(root, "sources", "is required: list at least one webhook source")
            }
            if let n = top.node("rules") {
                config.rules = parseRules(n, reader: reader, sourceNames: Set(config.sources.map(\.name)))
            }
            if let n = top.node("azureml"), let m = reader.mapping(n, "azureml") {
                config.azureml.mode = m.choice("mode", default: AzureMLConfig.Mode.local)
                config.azureml.api = m.choice("api", default: AzureMLConfig.API.v1)
                if let cn = m.node("cloud"), let cm = reader.mapping(cn, m.keyPath("cloud")) {
                    config.azureml.cloud = parseCloud(cm, reader: reader, named: false)
                }
                if let wn = m.node("workspaces"), let wm = reader.mapping(wn, m.keyPath("workspaces")) {
                    for key in wm.keys {
                        guard let n = wm.node(key), let one = reader.mapping(n, wm.keyPath(key)) else { continue }
                        if case .failure(let e) = ActionSchema.check(.name(max: 64, dots: false), key) {
                            reader.error(n, wm.keyPath(key), "a workspace's name: \(e.description)")
                        }
                        let c = parseCloud(one, reader: reader, named: true)
                        for (field, value) in [("tenant_id", c.tenantID), ("client_id", c.clientID), ("subscription_id", c.subscriptionID),
                                               ("resource_group", c.resourceGroup), ("workspace", c.workspace)] where value == nil {
                            reader.error(n, one.keyPath(field), "is required")
                        }
                        if c.clientSecret == nil { reader.error(n, one.keyPath("client_secret"), "is required ({ env: NAME } or { file: PATH })") }
                        config.azureml.workspaces[key] = c
                    }
                    wm.finish()
                }
                if let ln = m.node("local"), let lm = reader.mapping(ln, m.keyPath("local")) {
                    if let d = lm.string("data_dir") { config.azureml.localDataDirectory = d }
                    if let listen = lm.string("listen") {
                        if let (h, p) = parseListen(listen) { config.azureml.localHost = h; config.azureml.localPort = p }
                        else { reader.error(lm.node("listen"), lm.keyPath("listen"), "expected host:port, got \"\(listen)\"") }
                    }
                    config.azureml.localConfinement = lm.choice("confinement", default: LocalConfinement.required)
                    config.azureml.localNetwork = lm.choice("network", default: LocalNetwork.isolated)
                    config.azureml.localRunRetentionDays = lm.int("run_retention_days", default: config.azureml.localRunRetentionDays,
                                                                  range: 1...3650)
                    if let limitsNode = lm.node("limits"), let l = reader.mapping(limitsNode, lm.keyPath("limits")) {
                        var limits = config.azureml.localLimits
                        limits.processes = l.int("processes", default: limits.processes, range: 16...65_536)
                        limits.memoryMB = l.int("memory_mb", default: limits.memoryMB, range: 64...1 << 30)
                        limits.fileMB = l.int("file_mb", default: limits.fileMB, range: 1...1 << 30)
                        limits.tmpMB = l.int("tmp_mb", default: limits.tmpMB, range: 1...1 << 30)
                        limits.folderMB = l.int("folder_mb", default: limits.folderMB, range: 1...1 << 30)
                        config.azureml.localLimits = limits
                        l.finish()
                    }
                    lm.finish()
                }
                m.finish()
            }
            if let n = top.node("jobs"), let m = reader.mapping(n, "jobs") {
                config.jobs.workers = m.int("workers", default: config.jobs.workers, range: 1...256)
                config.jobs.retryBaseSeconds = m.int("retry_base_seconds", default: config.jobs.retryBaseSeconds, range: 0...86_400)
                config.jobs.retryMaxSeconds = m.int("retry_max_seconds", default: config.jobs.retryMaxSeconds, range: 0...86_400)
                config.jobs.leaseSeconds = m.int("lease_seconds", default: config.jobs.leaseSeconds, range: 10...86_400)
                if let dir = m.string("git_cache_dir") {
                    if dir.isEmpty { reader.error(m.node("git_cache_dir"), m.keyPath("git_cache_dir"), "must not be empty") }
                    else { config.jobs.gitCacheDirectory = dir }
                }
                m.finish()
            }
            if let n = top.node("callbacks"), let m = reader.mapping(n, "callbacks") {
                if let sn = m.node("retry_schedule_seconds"), let items = reader.sequence(sn, m.keyPath("retry_schedule_seconds")) {
                    var schedule: [Int] = []
                    for (i, item) in items.enumerated() {
                        if let text = item.string, let v = Int(text), (0...604_800).contains(v) { schedule.append(v) }
                        else { reader.error(item, "\(m.keyPath("retry_schedule_seconds"))[\(i)]", "expected seconds between 0 and 604800") }
                    }
                    config.callbacks.retrySchedule = schedule
                }
                m.finish()
            }
            if let n = top.node("admin"), let m = reader.mapping(n, "admin") {
                if let tn = m.node("token") {
                    config.admin.token = parseSecretReference(tn, path: m.keyPath("token"), reader: reader)
                    config.admin.tokenLine = SourceLine(tn.mark?.line ?? 0)
                }
                config.admin.protectMetrics = m.bool("protect_metrics", default: false)
                if config.admin.protectMetrics && config.admin.token == nil {
                    reader.error(m.node("protect_metrics"), m.keyPath("protect_metrics"), "needs admin.token: /metrics would answer nobody")
                }
                m.finish()
            }
            if let n = top.node("scheduler"), let m = reader.mapping(n, "scheduler") {
                config.scheduler.catchUpSeconds = m.int("catch_up_seconds", default: config.scheduler.catchUpSeconds, range: 0...(30 * 86_400))
                m.finish()
            }
            top.finish()
        }
        // An action's workspace names one of azureml.workspaces (checked once both are read).
        for (i, rule) in config.rules.enumerated() {
            for (j, action) in rule.actions.enumerated() {
                guard case .single(let t)? = action.parameters["workspace"], !t.source.contains("{{") else { continue }
                if config.azureml.workspaces[t.source] == nil {
                    let known = config.azureml.workspaces.keys.sorted()
                    reader.issues.append(ConfigIssue(file: file, line: action.line, key: "rules[\(i)].actions[\(j)].\(action.type.rawValue).workspace",
                                                     message: "names no workspace of azureml.workspaces" + (known.isEmpty ? " (there are none)" : "; they are \(known.joined(separator: ", "))")))
                }
            }
        }
        guard reader.issues.isEmpty else {
            throw ConfigError(reader.issues.sorted { $0.line < $1.line })
        }
        return LoadedConfig(config: config, warnings: reader.warnings)
    }

    private static func parseServer(_ m: MappingReader) -> ServerConfig {
        var s = ServerConfig()
        if let listen = m.string("listen") {
            if let (host, port) = parseListen(listen) {
                s.host = host
                s.port = port
            } else {
                m.reader.error(m.node("listen"), m.keyPath("listen"), "expected host:port such as \"127.0.0.1:8080\" or \"[::1]:8080\", got \"\(listen)\"")
            }
        }
        s.maxBodyBytes = m.int("max_body_bytes", default: s.maxBodyBytes, range: 1024...(1 << 30))
        s.shutdownGraceSeconds = m.int("shutdown_grace_seconds", default: s.shutdownGraceSeconds, range: 1...3600)
        s.idleTimeoutSeconds = m.int("idle_timeout_seconds", default: s.idleTimeoutSeconds, range: 1...3600)
        s.readTimeoutSeconds = m.int("read_timeout_seconds", default: s.readTimeoutSeconds, range: 1...3600)
        s.maxConnections = m.int("max_connections", default: s.maxConnections, range: 1...1_000_000)
        s.maxInflightBodyBytes = m.int("max_inflight_body_bytes", default: s.maxInflightBodyBytes, range: 1024...(1 << 40))
        if m.node("max_inflight_body_bytes_per_client") != nil {
            s.maxInflightBodyBytesPerClient = m.int("max_inflight_body_bytes_per_client", default: s.inflightShare, range: 1024...(1 << 40))
        }
        s.minBodyBytesPerSecond = m.int("min_body_bytes_per_second", default: s.minBodyBytesPerSecond, range: 0...(1 << 30))
        s.bodyRateGraceSeconds = m.int("body_rate_grace_seconds", default: s.bodyRateGraceSeconds, range: 1...3600)
        s.maxConnectionsPerClient = m.int("max_connections_per_client", default: s.maxConnectionsPerClient, range: 1...1_000_000)
        s.headerTimeoutSeconds = m.int("header_timeout_seconds", default: s.headerTimeoutSeconds, range: 1...3600)
        if let tn = m.node("tls"), let tm = m.reader.mapping(tn, m.keyPath("tls")) {
            let cert = tm.requiredString("cert_file"), key = tm.requiredString("key_file")
            if let cert, let key { s.tls = TLSConfig(certificateFile: cert, keyFile: key) }
            tm.finish()
        }
        m.finish()
        return s
    }

    /// Splits `host:port` (IPv6 hosts in brackets).
    public static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }

    private static func parseStore(_ m: MappingReader) -> StoreConfig {
        var s = StoreConfig()
        if m.has("postgres") {
            for key in ["path", "synchronous"] where m.has(key) {
                m.reader.error(m.node(key), m.keyPath(key), "store.\(key) is for SQLite; store.postgres and store.\(key) are exclusive")
            }
            if let n = m.node("postgres"), let pm = m.reader.mapping(n, m.keyPath("postgres")) {
                if let p = parsePostgres(pm) { s.backend = .postgres(p) }
            }
        } else {
            var sqlite = StoreConfig.SQLite()
            if let path = m.string("path") {
                if path.isEmpty { m.reader.error(m.node("path"), m.keyPath("path"), "must not be empty") } else { sqlite.path = path }
            }
            sqlite.synchronous = m.choice("synchronous", default: SynchronousMode.full)
            s.backend = .sqlite(sqlite)
        }
        s.retentionDays = m.int("retention_days", default: s.retentionDays, range: 7...3650)
        m.finish()
        return s
    }

    private static func parsePostgres(_ m: MappingReader) -> StoreConfig.Postgres? {
        defer { m.finish() }
        let poolSize = m.int("pool_size", default: 10, range: 1...1000)
        let connectTimeout = m.int("connect_timeout_seconds", default: 5, range: 1...300)
        let ingestTimeout = m.int("ingest_timeout_ms", default: 1000, range: 50...60000)
        guard let n = m.node("url") else {
            m.reader.error(m.node, m.keyPath("url"), "is required: { env: MLHOOK_DATABASE_URL } or { file: PATH }")
            return nil
        }
        guard let url = parseSecretReference(n, path: m.keyPath("url"), reader: m.reader) else { return nil }
        if case .literal(let text) = url {
            do { _ = try PostgresURL(text) } catch { m.reader.error(n, m.keyPath("url"), "is not a PostgreSQL URL: \(error)") }
        }
        return StoreConfig.Postgres(url: url, poolSize: poolSize, connectTimeoutSeconds: connectTimeout, ingestTimeoutMilliseconds: ingestTimeout)
    }

    private static func parseSource(_ m: MappingReader, reader: YAMLReader) -> SourceConfig? {
        let name = m.requiredString("name")
        if name == "schedule" {
            reader.error(m.node("name"), m.keyPath("name"), "\"schedule\" is reserved for cron ticks; choose another source name")
        }
        if let name, name.utf8.contains(where: { !(Self.nameBytes.contains($0)) }) || name.count > 64 {
            reader.error(m.node("name"), m.keyPath("name"), "must be 1-64 of a-z, 0-9, - and _ (it is a URL path segment), got \"\(name)\"")
        }
        guard m.has("type") else {
            reader.error(m.node, m.keyPath("type"), "is required: one of \(SourceType.allCases.map(\.rawValue).joined(separator: ", "))")
            m.finish()
            return nil
        }
        let type = m.choice("type", default: SourceType.github)
        var source = SourceConfig(name: name ?? "", type: type)
        source.insecure = m.bool("insecure", default: false)
        source.toleranceSeconds = m.int("tolerance_seconds", default: 300, range: 1...86400)
        if type == .github {
            source.allowSHA1 = m.bool("allow_sha1", default: false)
        }
        if let n = m.node("git_schemes"), let items = reader.sequence(n, m.keyPath("git_schemes")) {
            let schemes = items.enumerated().compactMap { reader.string($1, "\(m.keyPath("git_schemes"))[\($0)]") }.map { $0.lowercased() }
            for s in schemes where !SourceConfig.knownGitSchemes.contains(s) {
                reader.error(m.node("git_schemes"), m.keyPath("git_schemes"),
                             "\"\(s)\" is not a git transport mlhook uses; choose from \(SourceConfig.knownGitSchemes.joined(separator: ", "))")
            }
            source.gitSchemes = schemes
        }
        if let forge = m.string("forge_url") {
            if TokenDestination.allows(forge) { source.forgeURL = forge }
            else { reader.error(m.node("forge_url"), m.keyPath("forge_url"), "must be an https URL (or http to this machine): git tokens are sent to it") }
        }
        if let n = m.node("secrets") {
            if let items = reader.sequence(n, m.keyPath("secrets")) {
                for (i, item) in items.enumerated() {
                    if let ref = parseSecretReference(item, path: "\(m.keyPath("secrets"))[\(i)]", reader: reader) {
                        source.secrets.append(ref)
                        source.secretLines.values.append(item.mark?.line ?? 0)
                    }
                }
            }
        }
        if source.secrets.isEmpty && !source.insecure {
            reader.error(m.node, m.keyPath("secrets"),
                         "a source needs at least one secret ({ env: NAME } or { file: PATH }), or insecure: true to accept unsigned requests")
        }
        if type == .generic {
            if let n = m.node("generic"), let g = reader.mapping(n, m.keyPath("generic")) {
                source.generic = parseGeneric(g, tolerance: source.toleranceSeconds)
            } else if !m.has("generic") {
                reader.error(m.node, m.keyPath("generic"), "is required for type generic (at least generic.header)")
            }
        }
        m.finish()
        return source
    }

    private static let nameBytes = Set(Array("abcdefghijklmnopqrstuvwxyz0123456789-_".utf8))

    static func parseSecretReference(_ node: Node, path: String, reader: YAMLReader) -> SecretReference? {
        if case .scalar(let s) = node {
            reader.warn(node, path, "a literal secret in the config file; prefer { env: NAME } or { file: PATH }")
            guard !s.string.isEmpty else {
                reader.error(node, path, "the secret is empty")
                return nil
            }
            return .literal(s.string)
        }
        guard let m = reader.mapping(node, path) else { return nil }
        defer { m.finish() }
        if m.has("env") {
            guard let name = m.requiredString("env") else { return nil }
            return .env(name)
        }
        if m.has("file") {
            guard let file = m.requiredString("file") else { return nil }
            return .file(file, create: m.bool("create", default: false))
        }
        if m.has("value") {
            reader.warn(node, path, "a literal secret in the config file; prefer { env: NAME } or { file: PATH }")
            guard let v = m.requiredString("value") else { return nil }
            return .literal(v)
        }
        reader.error(node, path, "expected { env: NAME } or { file: PATH }")
        return nil
    }

    private static func parseGeneric(_ m: MappingReader, tolerance: Int) -> GenericSourceConfig? {
        guard let header = m.requiredString("header") else { m.finish(); return nil }
        var g = GenericSourceConfig(header: header)
        g.algorithm = m.choice("algorithm", default: HMACAlgorithm.sha256)
        g.encoding = m.choice("encoding", default: GenericHMACScheme.Encoding.hex)
        g.prefix = m.string("prefix") ?? ""
        g.timestampHeader = m.string("timestamp_header")
        g.signedString = m.string("signed_string")
        g.deliveryHeader = m.string("delivery_header")
        g.eventHeader = m.string("event_header")
        do {
            _ = try g.scheme(tolerance: tolerance)
        } catch {
            m.reader.error(m.node, m.path, error.description)
        }
        m.finish()
        return g
    }

    private static func line(of error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _): mark.line
        default: 0
        }
    }

    private static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _): problem
        default: "\(error)"
        }
    }
}

extension GenericSourceConfig {
    /// The verification scheme this configuration describes.
    public func scheme(tolerance: Int) throws(GenericLayoutError) -> GenericHMACScheme {
        try GenericHMACScheme(header: header, algorithm: algorithm, encoding: encoding, prefix: prefix,
                              timestampHeader: timestampHeader, signedString: signedString,
                              tolerance: TimeInterval(tolerance))
    }
}
