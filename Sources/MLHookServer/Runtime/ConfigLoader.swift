import Foundation
import MLHookCore

/// Reads the configuration file (or the embedded defaults) and applies `MLHOOK_*` environment overrides.
public enum ConfigLoader {
    /// Environment variables that override keys, for deployments that template nothing into the file.
    public static let overrides: [(variable: String, key: String)] = [
        ("MLHOOK_LISTEN", "server.listen"),
        ("MLHOOK_MAX_BODY_BYTES", "server.max_body_bytes"),
        ("MLHOOK_STORE_PATH", "store.path"),
        ("MLHOOK_STORE_SYNCHRONOUS", "store.synchronous"),
        ("MLHOOK_DATABASE_URL", "store.postgres.url"),
        ("MLHOOK_ADMIN_TOKEN", "admin.token"),
        ("MLHOOK_LOG_LEVEL", "log.level"),
        ("MLHOOK_LOG_FORMAT", "log.format"),
    ]

    /// Loads and validates a configuration.
    /// - Parameters:
    ///   - path: The YAML file; nil for the embedded defaults.
    ///   - environment: The process environment (injected for tests).
    /// - Throws: `ConfigError` naming the file, line and key of every problem.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigError) -> LoadedConfig {
        let file = path ?? "<embedded defaults>"
        let text: String
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError([ConfigIssue(file: path, line: 0, key: "", message: "cannot read the file (missing or not readable)")])
            }
            guard let t = String(data: data, encoding: .utf8) else {
                throw ConfigError([ConfigIssue(file: path, line: 0, key: "", message: "the file is not UTF-8 text")])
            }
            text = t
        } else {
            // The sample callback points at the port the service will listen on.
            let port = environment["MLHOOK_LISTEN"].flatMap(MLHookConfig.parseListen)?.1 ?? 8080
            text = MLHookConfig.embeddedDefaults(port: port)
        }
        var loaded = try MLHookConfig.parse(yaml: text, file: file)
        try applyOverrides(&loaded.config, environment: environment)
        return loaded
    }

    private static func applyOverrides(_ config: inout MLHookConfig, environment: [String: String]) throws(ConfigError) {
        var issues: [ConfigIssue] = []
        func fail(_ variable: String, _ message: String) {
            issues.append(ConfigIssue(file: "<environment>", line: 0, key: variable, message: message))
        }
        if let v = environment["MLHOOK_LISTEN"] {
            if let (h, p) = MLHookConfig.parseListen(v) { config.server.host = h; config.server.port = p }
            else { fail("MLHOOK_LISTEN", "expected host:port, got \"\(v)\"") }
        }
        if let v = environment["MLHOOK_MAX_BODY_BYTES"] {
            if let n = Int(v), n >= 1024 { config.server.maxBodyBytes = n } else { fail("MLHOOK_MAX_BODY_BYTES", "expected an integer ≥ 1024") }
        }
        if case .sqlite(var sqlite) = config.store.backend {
            if let v = environment["MLHOOK_STORE_PATH"], !v.isEmpty { sqlite.path = v }
            if let v = environment["MLHOOK_STORE_SYNCHRONOUS"] {
                if let m = SynchronousMode(rawValue: v) { sqlite.synchronous = m } else { fail("MLHOOK_STORE_SYNCHRONOUS", "expected full or normal") }
            }
            config.store.backend = .sqlite(sqlite)
        }
        if let v = environment["MLHOOK_DATABASE_URL"], !v.isEmpty {
            // The shared store instead of whatever the file names (the URL is read from the variable at open).
            do { _ = try PostgresURL(v) } catch { fail("MLHOOK_DATABASE_URL", "is not a PostgreSQL URL: \(error)") }
            var postgres = StoreConfig.Postgres(url: .env("MLHOOK_DATABASE_URL"))
            if case .postgres(let configured) = config.store.backend {
                postgres.poolSize = configured.poolSize
                postgres.connectTimeoutSeconds = configured.connectTimeoutSeconds
                postgres.ingestTimeoutMilliseconds = configured.ingestTimeoutMilliseconds
            }
            config.store.backend = .postgres(postgres)
        }
        if let v = environment["MLHOOK_ADMIN_TOKEN"], !v.isEmpty {
            // The admin API and /ui, on embedded defaults too (read from the variable when it is resolved).
            config.admin.token = .env("MLHOOK_ADMIN_TOKEN")
            config.admin.tokenLine = 0
        }
        if let v = environment["MLHOOK_LOG_LEVEL"] {
            if let l = LogLevel(rawValue: v) { config.log.level = l } else { fail("MLHOOK_LOG_LEVEL", "expected one of \(LogLevel.allCases.map(\.rawValue).joined(separator: ", "))") }
        }
        if let v = environment["MLHOOK_LOG_FORMAT"] {
            if let f = LogFormat(rawValue: v) { config.log.format = f } else { fail("MLHOOK_LOG_FORMAT", "expected text or json") }
        }
        if !issues.isEmpty { throw ConfigError(issues) }
    }

    /// The embedded aml-local keeps its runs in one process's data directory: it cannot be shared by replicas.
    /// Checked by `serve` and `config check` (not by commands that only read the store).
    public static func checkScaleOut(_ config: MLHookConfig) throws(ConfigError) {
        guard case .postgres = config.store.backend, config.azureml.mode == .local else { return }
        throw ConfigError([ConfigIssue(file: "<configuration>", line: 0, key: "azureml.mode",
                                       message: "local (the embedded aml-local) serves one replica only, and store.postgres is for several: "
                                           + "run `mlhook aml-local` as its own service and point azureml.mode: cloud at it, or use Azure ML")])
    }
}
