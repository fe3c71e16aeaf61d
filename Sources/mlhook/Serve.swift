import ArgumentParser
import CProcessControl
import Foundation
import Hummingbird
import Logging
import MLHookCore
import MLHookServer
import ServiceLifecycle
import Store

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the webhook service.",
        discussion: "With no --config it runs on embedded defaults: 127.0.0.1:8080, a GitHub source at /hooks/github whose secret is generated into .mlhook/secrets/github, and the store in .mlhook/mlhook.db."
    )

    @OptionGroup var options: ConfigOption

    func run() async throws {
        // Before anything holds a secret: the process's memory and /proc entries (environ) are not readable by
        // other processes of the same user, such as a script it runs.
        _ = mlhook_set_undumpable()
        let loaded = try options.load()
        let logger = bootstrapLogging(loaded.config.log)
        let runtime: MLHookRuntime
        do {
            runtime = try await MLHookRuntime.prepare(loaded, path: options.config, logger: logger)
        } catch let error as ConfigError {
            printError("cannot start:\n\(error.description)")
            throw ExitCode(2)
        } catch {
            printError("cannot start: \(error)")
            throw ExitCode(1)
        }
        let config = runtime.config
        let app = buildApplication(runtime) { port in
            logger.notice("mlhook listening on \(runtime.scheme)://\(config.server.host):\(port)",
                          metadata: ["sources": .string(config.sources.map { "/hooks/\($0.name)" }.joined(separator: ","))])
            if options.config == nil {
                logger.notice("embedded defaults: GitHub webhooks at http://\(config.server.host):\(port)/hooks/github, secret in .mlhook/secrets/github, store \(config.store)")
            }
        }
        defer { runtime.amlLocal?.shutdown() }
        // SIGTERM/SIGINT: stop accepting, finish in-flight requests and running actions; after the grace period
        // whatever still runs is cancelled (an interrupted job goes back to the queue for the next start).
        let notice = ShutdownNotice(store: runtime.store, graceSeconds: config.server.shutdownGraceSeconds, logger: logger)
        var group = ServiceGroupConfiguration(services: [.init(service: app), .init(service: notice, successTerminationBehavior: .ignore)],
                                              gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(config.server.shutdownGraceSeconds)
        group.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: group).run()
        logger.notice("mlhook stopped")
    }
}

/// Says, the moment a SIGTERM or SIGINT arrives, that shutdown started and what it waits for (it was silent for
/// the whole grace period before).
struct ShutdownNotice: Service {
    let store: any StoreStatistics
    let graceSeconds: Int
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        let counts = try? await store.counts()
        let running = (counts?.jobs["running"] ?? 0), pending = (counts?.callbacks["pending"] ?? 0)
        logger.notice("shutdown started: no new connections; finishing in-flight requests and \(running) running job(s) for at most \(graceSeconds) s, then they return to the queue (\(pending) callback(s) wait for the next start)")
    }
}
