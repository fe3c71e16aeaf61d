import Foundation
import Logging
import MLHookCore
import Signing
import Store

/// A validated configuration with its secrets resolved and its store open: everything `buildApplication`
/// wires together. Tests build one with a temporary store and an injected clock.
public struct MLHookRuntime: Sendable {
    public let config: MLHookConfig
    public let sources: [IngressSource]
    public let store: any EventStore
    public let logger: Logger
    /// The clock used for replay windows and timestamps.
    public let now: @Sendable () -> Date

    public init(config: MLHookConfig, sources: [IngressSource], store: any EventStore, logger: Logger,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.config = config
        self.sources = sources
        self.store = store
        self.logger = logger
        self.now = now
    }

    /// Resolves the sources' secrets, logs the configuration's warnings, and opens the SQLite store.
    /// - Throws: `ConfigError` for secrets that are missing or empty, `StoreError` when the store cannot open.
    public static func prepare(_ loaded: LoadedConfig, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment,
                               now: @escaping @Sendable () -> Date = { Date() }) throws -> MLHookRuntime {
        for warning in loaded.warnings { logger.warning("config: \(warning)") }
        let sources = try resolveSources(loaded.config, logger: logger, environment: environment)
        let store = try SQLiteEventStore(path: loaded.config.store.path, synchronous: loaded.config.store.synchronous, logger: logger)
        return MLHookRuntime(config: loaded.config, sources: sources, store: store, logger: logger, now: now)
    }

    /// Builds every source's verifier from its resolved secrets; collects every problem before failing.
    public static func resolveSources(_ config: MLHookConfig, logger: Logger,
                                      environment: [String: String]) throws(ConfigError) -> [IngressSource] {
        let resolver = SecretResolver(environment: environment)
        var sources: [IngressSource] = []
        var issues: [ConfigIssue] = []
        for source in config.sources {
            var secrets: [WebhookSecret] = []
            for (i, ref) in source.secrets.enumerated() {
                do { secrets.append(try resolver.resolve(ref, key: "sources[\(source.name)].secrets[\(i)]")) }
                catch { issues += error.issues }
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
