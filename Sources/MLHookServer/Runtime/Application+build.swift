import AMLLocal
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MLHookCore
import NIOCore
import ServiceLifecycle
import Store

/// The one composition root: `mlhook serve` and the tests call it alike.
/// - Parameters:
///   - runtime: The prepared configuration, sources, store and clock.
///   - onServerRunning: Called with the bound port once listening (port 0 picks a free one).
/// - Returns: The application, ready for `runService()`.
public func buildApplication(
    _ runtime: MLHookRuntime,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: MLHookRequestContext.self)
    var ingress = IngressController(live: runtime.live, store: runtime.store, maxBodyBytes: runtime.config.server.maxBodyBytes,
                                    now: runtime.now, logger: runtime.logger, metrics: runtime.metrics)
    ingress.inflight = BodyBudget(limit: runtime.config.server.maxInflightBodyBytes, perClient: runtime.config.server.inflightShare)
    ingress.minimumRate = runtime.config.server.minBodyBytesPerSecond == 0 ? nil
        : (Double(runtime.config.server.minBodyBytesPerSecond), .seconds(runtime.config.server.bodyRateGraceSeconds))
    ingress.addRoutes(to: router)
    runtime.metrics.addRoutes(to: router, store: runtime.store, live: runtime.live, connections: runtime.connections)
    AdminAPI(store: runtime.store, live: runtime.live, logger: runtime.logger).addRoutes(to: router)
    var statusPage = StatusPage(store: runtime.store, live: runtime.live, logger: runtime.logger)
    statusPage.secure = runtime.scheme == "https"
    let cloud = runtime.config.azureml.cloud
    if runtime.config.azureml.mode == .cloud, let sub = cloud.subscriptionID, let rg = cloud.resourceGroup, let ws = cloud.workspace {
        // Azure ML studio's run page.
        statusPage.runLink = { _, runID in "https://ml.azure.com/runs/\(runID)?wsid=/subscriptions/\(sub)/resourcegroups/\(rg)/workspaces/\(ws)" }
    }
    statusPage.addRoutes(to: router)
    HealthController(store: runtime.store).addRoutes(to: router)
    // The embedded defaults' rule calls back /sample/callback: served even when MLHOOK_NO_SAMPLE skips the sample's
    // push (before, its callbacks then went to a 404 and `send --wait` waited for ever).
    let sample = runtime.embeddedDefaults || runtime.runSample ? SampleDemo(store: runtime.store, live: runtime.live, logger: runtime.logger) : nil
    sample?.addRoutes(to: router)

    var pruner = EventPruner(store: runtime.store, retentionDays: runtime.config.store.retentionDays,
                             now: runtime.now, logger: runtime.logger)
    pruner.git = runtime.azureMLClient == nil ? nil : GitSource(cacheDirectory: runtime.config.gitCacheDirectory)
    pruner.amlLocal = runtime.amlLocal
    pruner.runRetentionDays = runtime.config.azureml.localRunRetentionDays
    var services: [any Service] = [
        pruner,
        EventPlanner(store: runtime.store, live: runtime.live, logger: runtime.logger),
        Scheduler(store: runtime.store, live: runtime.live, clock: runtime.schedulerClock, logger: runtime.logger),
    ]
    if let path = runtime.configPath {
        services.append(ConfigReloader(path: path, live: runtime.live, logger: runtime.logger, metrics: runtime.metrics))
    }
    if let client = runtime.azureMLClient {
        let cache = runtime.config.gitCacheDirectory
        let jobs = runtime.config.jobs
        services.append(JobRunner(store: runtime.store, live: runtime.live, client: client, logger: runtime.logger,
                                  workers: jobs.workers, lease: TimeInterval(jobs.leaseSeconds),
                                  baseBackoff: TimeInterval(jobs.retryBaseSeconds), maxBackoff: TimeInterval(jobs.retryMaxSeconds),
                                  git: GitSource(cacheDirectory: cache), now: runtime.now, metrics: runtime.metrics))
        services.append(CallbackDeliverer(store: runtime.store, live: runtime.live, logger: runtime.logger,
                                          schedule: runtime.config.callbacks.retrySchedule.map(TimeInterval.init), metrics: runtime.metrics,
                                          now: runtime.now))
    }
    if let aml = runtime.amlLocal {
        let local = runtime.config.azureml
        let logger = runtime.logger
        // No port configured: the one it had last time when free, so saved credentials keep working.
        let port = local.localPort != 0 ? local.localPort : AMLLocal.rememberedPort(dataDirectory: local.localDataDirectory, host: local.localHost)
        services.append(Application(
            router: aml.router(),
            configuration: .init(address: .hostname(local.localHost, port: port), serverName: "aml-local"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? local.localPort
                do { try aml.bound(port: port, host: local.localHost) } catch { logger.error("aml-local: cannot write credentials.json: \(error)") }
                logger.notice("embedded aml-local (azureml.mode: local) at http://\(local.localHost):\(port), credentials in \(local.localDataDirectory)/credentials.json")
            },
            logger: logger))
    }
    return Application(
        router: router,
        server: runtime.httpServer,
        configuration: .init(address: .hostname(runtime.config.server.host, port: runtime.config.server.port),
                             serverName: "mlhook",
                             availableConnectionsDelegate: MaximumAvailableConnections(runtime.config.server.maxConnections)),
        services: services,
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            await onServerRunning(port)
            if runtime.runSample, let sample { Task { await sample.run(port: port) } }
        },
        logger: runtime.logger
    )
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
