import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Synchronization

/// Reloads the configuration on SIGHUP and when the file changes. An invalid new configuration keeps the
/// running one and logs every problem with its line.
public final class ConfigReloader: Service, Sendable {
    let path: String
    let live: LiveConfig
    let logger: Logger
    let environment: [String: String]
    let pollInterval: Duration
    private let hangup = Mutex(false)
    private let lastModified = Mutex<String?>(nil)

    let metrics: MLHookMetrics

    public init(path: String, live: LiveConfig, logger: Logger,
                environment: [String: String] = ProcessInfo.processInfo.environment, pollInterval: Duration = .seconds(1),
                metrics: MLHookMetrics = MLHookMetrics()) {
        self.metrics = metrics
        self.path = path
        self.live = live
        self.logger = logger
        self.environment = environment
        self.pollInterval = pollInterval
        lastModified.withLock { $0 = Self.modified(path) }
    }

    /// The modification time of the file `path` names, through symlinks (a Kubernetes ConfigMap mount swaps a
    /// symlink to a new file rather than changing the file it showed before).
    static func modified(_ path: String) -> String? {
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let date = (try? FileManager.default.attributesOfItem(atPath: target))?[.modificationDate] as? Date else { return nil }
        return "\(target)@\(date.timeIntervalSince1970)"
    }

    public func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler { [self] in hangup.withLock { $0 = true } }
        source.resume()
        defer { source.cancel() }
        while !Task.isCancelledOrShuttingDown {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.pollInterval) }
            let signalled = hangup.withLock { v in defer { v = false }; return v }
            let mtime = Self.modified(path)
            let changed = lastModified.withLock { old in defer { old = mtime }; return mtime != nil && mtime != old }
            if signalled || changed {
                _ = reload(reason: signalled ? "SIGHUP" : "file changed")
            }
        }
    }

    /// Loads, validates and installs the file's configuration.
    /// - Returns: Whether the new configuration is now in force.
    @discardableResult
    public func reload(reason: String) -> Bool {
        do {
            let loaded = try ConfigLoader.load(path: path, environment: environment)
            for w in loaded.warnings { logger.warning("config: \(w)") }
            let sources = try MLHookRuntime.resolveSources(loaded.config, logger: logger, environment: environment)
            let adminToken = try MLHookRuntime.resolveAdminToken(loaded.config, environment: environment)
            let old = live.snapshot.config
            if old.server != loaded.config.server || old.store != loaded.config.store {
                logger.warning("config reload (\(reason)): server and store settings change only at restart")
            }
            live.replace(config: loaded.config, sources: sources)
            live.adminToken = adminToken
            logger.notice("config reloaded (\(reason)): \(sources.count) sources, \(loaded.config.rules.count) rules")
            metrics.configReload(outcome: "applied")
            return true
        } catch {
            for issue in error.issues { logger.error("config reload (\(reason)) rejected, keeping the running configuration: \(issue)") }
        }
        metrics.configReload(outcome: "rejected")
        return false
    }
}
