import AMLLocal
import AzureML
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import MLHookCore
import Signing
import Store

/// A validated configuration with its secrets resolved and its store open: everything `buildApplication`
/// wires together. Tests build one with a temporary store and an injected clock.
public struct MLHookRuntime: Sendable {
    /// The configuration at start (server and store settings come from here; sources and rules from `live`).
    public let config: MLHookConfig
    /// The configuration in force, replaced on reload.
    public let live: LiveConfig
    public let store: any MLHookStore
    public let logger: Logger
    /// The clock used for replay windows and timestamps.
    public let now: @Sendable () -> Date
    /// The clock schedules fire on.
    public let schedulerClock: any SchedulerClock
    /// The file to reload on SIGHUP or change (nil: embedded defaults, nothing to reload).
    public let configPath: String?
    /// The embedded Azure-ML-compatible server (`azureml.mode: local`).
    public var amlLocal: AMLLocal?
    /// Run the bundled sample once listening (embedded defaults with the local Azure ML server).
    public var runSample = false
    /// Serving the embedded defaults (no configuration file): their sample rule calls back `/sample/callback`,
    /// which is served whether or not the sample push is sent (`MLHOOK_NO_SAMPLE` skips only the push).
    public var embeddedDefaults = false
    /// HTTP, or HTTPS with `server.tls`.
    public var httpServer: HTTPServerBuilder = .http1(configuration: MLHookRuntime.http1Configuration(ServerConfig()))
    /// Connections open per client address (`server.max_connections_per_client`), shown in /metrics.
    public var connections = ClientConnections(limit: ServerConfig().maxConnectionsPerClient)
    /// "http" or "https".
    public var scheme = "http"
    /// Prometheus metrics, served at /metrics.
    public let metrics = MLHookMetrics()
    /// The Azure ML client jobs use, one instance for the life of the process (nil: no job runner, as in
    /// ingress-only tests).
    public var azureMLClient: (@Sendable () async throws -> any AzureMLClient)?

    public init(config: MLHookConfig, sources: [IngressSource], store: any MLHookStore, logger: Logger,
                now: @escaping @Sendable () -> Date = { Date() }, schedulerClock: any SchedulerClock = SystemSchedulerClock(),
                configPath: String? = nil) {
        self.config = config
        self.live = LiveConfig(config: config, sources: sources)
        self.store = store
        self.logger = logger
        self.now = now
        self.schedulerClock = schedulerClock
        self.configPath = configPath
    }

    /// Resolves the sources' secrets, logs the configuration's warnings, and opens the configured store.
    /// - Throws: `ConfigError` for secrets that are missing or empty, `StoreError` when the store cannot open.
    public static func prepare(_ loaded: LoadedConfig, path: String?, logger: Logger,
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               now: @escaping @Sendable () -> Date = { Date() }) async throws -> MLHookRuntime {
        for warning in loaded.warnings { logger.warning("config: \(warning)") }
        // Every secret that cannot be resolved is reported, not only those of the first kind that fails.
        let file = path ?? "<embedded defaults>"
        let sources: [IngressSource]
        do { sources = try resolveSources(loaded.config, logger: logger, environment: environment, file: file) } catch {
            var issues = error.issues
            do { try checkSecrets(loaded.config, file: file, environment: environment) } catch let more { issues += more.issues }
            throw ConfigError(issues)
        }
        try checkSecrets(loaded.config, file: file, environment: environment)
        try ConfigLoader.checkScaleOut(loaded.config)
        let store = try await openStore(loaded.config.store, environment: environment, clock: now, logger: logger)
        var runtime = MLHookRuntime(config: loaded.config, sources: sources, store: store, logger: logger, now: now, configPath: path)
        runtime.live.adminToken = try resolveAdminToken(loaded.config, environment: environment)
        runtime.connections = ClientConnections(limit: loaded.config.server.maxConnectionsPerClient)
        runtime.httpServer = .http1(configuration: http1Configuration(loaded.config.server, connections: runtime.connections))
        if let tls = loaded.config.server.tls {
            runtime.httpServer = try tlsServer(tls, http1: http1Configuration(loaded.config.server, connections: runtime.connections))
            runtime.scheme = "https"
        }
        if loaded.config.azureml.mode == .local {
            var settings = AMLLocalSettings(dataDirectory: loaded.config.azureml.localDataDirectory)
            settings.confinement = RunConfinement(rawValue: loaded.config.azureml.localConfinement.rawValue) ?? .required
            settings.network = RunNetwork(rawValue: loaded.config.azureml.localNetwork.rawValue) ?? .isolated
            settings.limits = RunLimits(loaded.config.azureml.localLimits)
            let aml = try AMLLocal(settings: settings, logger: logger)
            runtime.amlLocal = aml
            runtime.embeddedDefaults = path == nil
            runtime.runSample = path == nil && environment["MLHOOK_NO_SAMPLE"] == nil
            // The embedded server's address is known once it is bound: the client is made on first use, then kept.
            let api = loaded.config.azureml.api
            let shared = SharedAzureMLClient {
                var settings = AzureMLSettings.local(aml)
                settings.api = api
                return HTTPAzureMLClient(settings: settings, logger: logger)
            }
            runtime.azureMLClient = { try shared.get() }
        } else if let settings = try AzureMLSettings.cloud(loaded.config.azureml.cloud, api: loaded.config.azureml.api, environment: environment) {
            let made = HTTPAzureMLClient(settings: settings, logger: logger)
            runtime.azureMLClient = { made }
        }
        return runtime
    }

    /// Opens the configured store through `StoreFactory`, resolving PostgreSQL's URL from its secret reference.
    /// - Throws: `ConfigError` when the URL cannot be resolved, `StoreError` when the store cannot open.
    public static func openStore(_ config: StoreConfig, environment: [String: String] = ProcessInfo.processInfo.environment,
                                 mustExist: Bool = false, background: Bool = true, clock: @escaping @Sendable () -> Date = { Date() },
                                 logger: Logger) async throws -> any MLHookStore {
        var url: String?
        if case .postgres(let postgres) = config.backend {
            // StoreFactory parses it, and refuses one that is not a PostgreSQL URL without quoting it.
            url = try SecretResolver(environment: environment).resolve(postgres.url, key: "store.postgres.url").text
        }
        return try await StoreFactory.open(config, mustExist: mustExist, background: background, databaseURL: url, clock: clock, logger: logger)
    }

    /// What every HTTP/1.1 connection gets: the per-client connection limit, the idle timeout, and the head and
    /// whole-request read deadlines.
    public static func http1Configuration(_ server: ServerConfig, connections: ClientConnections? = nil) -> HTTP1Channel.Configuration {
        let limit = TimeAmount.seconds(Int64(server.readTimeoutSeconds))
        let headLimit = TimeAmount.seconds(Int64(min(server.headerTimeoutSeconds, server.readTimeoutSeconds)))
        let connections = connections ?? ClientConnections(limit: server.maxConnectionsPerClient)
        return .init(additionalChannelHandlers: [ClientConnectionLimiter(connections), RequestReadDeadline(limit: limit, headLimit: headLimit)],
                     idleTimeout: .seconds(Int64(server.idleTimeoutSeconds)))
    }

    /// An HTTPS server builder from PEM files. - Throws: `ConfigError` naming the file that cannot be used.
    public static func tlsServer(_ tls: TLSConfig, http1: HTTP1Channel.Configuration) throws(ConfigError) -> HTTPServerBuilder {
        func fail(_ key: String, _ why: String) -> ConfigError {
            ConfigError([ConfigIssue(file: "<tls>", line: 0, key: "server.tls.\(key)", message: why)])
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(tls.certificateFile) } catch {
            throw fail("cert_file", "cannot read a PEM certificate chain from \(tls.certificateFile): \(error)")
        }
        guard !chain.isEmpty else { throw fail("cert_file", "\(tls.certificateFile) holds no certificate") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: tls.keyFile, format: .pem) } catch {
            throw fail("key_file", "cannot read a PEM private key from \(tls.keyFile): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do { return try .tls(.http1(configuration: http1), tlsConfiguration: configuration) } catch {
            throw fail("cert_file", "the certificate and key cannot be used together: \(error)")
        }
    }

    /// The admin token, when `admin.token` is set; an empty one is an error (it would not protect anything).
    public static func resolveAdminToken(_ config: MLHookConfig, environment: [String: String]) throws(ConfigError) -> WebhookSecret? {
        guard let ref = config.admin.token else { return nil }
        let token = try SecretResolver(environment: environment).resolve(ref, key: "admin.token")
        // It opens the admin API and /ui from the network: a short one can be guessed (openssl rand -hex 32 makes one).
        guard token.bytes.count >= minimumAdminTokenLength else {
            throw ConfigError([ConfigIssue(file: "<secrets>", line: 0, key: "admin.token",
                                           message: "is \(token.bytes.count) characters; at least \(minimumAdminTokenLength) are required (openssl rand -hex 32 makes one)")])
        }
        return token
    }

    /// The shortest admin token accepted.
    public static let minimumAdminTokenLength = 32

    /// Builds every source's verifier from its resolved secrets; collects every problem before failing.
    public static func resolveSources(_ config: MLHookConfig, logger: Logger, environment: [String: String],
                                      file: String = "<secrets>") throws(ConfigError) -> [IngressSource] {
        let resolver = SecretResolver(environment: environment)
        var sources: [IngressSource] = []
        var issues: [ConfigIssue] = []
        for source in config.sources {
            var secrets: [WebhookSecret] = []
            for (i, ref) in source.secrets.enumerated() {
                do { secrets.append(try resolver.resolve(ref, key: "sources[\(source.name)].secrets[\(i)]")) }
                catch {
                    let line = i < source.secretLines.values.count ? source.secretLines.values[i] : 0
                    issues += error.issues.map { ConfigIssue(file: file, line: line, key: $0.key, message: $0.message) }
                }
            }
            if source.insecure {
                logger.warning("source \(source.name) is insecure: unsigned requests to /hooks/\(source.name) are accepted")
            }
            guard secrets.count == source.secrets.count else { continue }
            do { sources.append(try IngressSource(config: source, secrets: secrets)) } catch { issues += error.issues }
        }
        if !issues.isEmpty { throw ConfigError(issues) }
        return sources
    }
}
