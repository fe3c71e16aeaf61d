import ArgumentParser
import CProcessControl
import Foundation
import Hummingbird
import Logging
import MLHookCore
import MLHookServer
import NIOCore
import ServiceLifecycle
import Store

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the webhook service.",
        discussion: "With no --config it runs on embedded defaults: 127.0.0.1:8080, a GitHub source at /hooks/github whose secret is generated into .mlhook/secrets/github, and the store in .mlhook/mlhook.db."
    )

    @OptionGroup var options: ConfigOption
    @Option(help: "host:port to listen on, over server.listen and MLHOOK_LISTEN (\"127.0.0.1:9000\"; port 0 picks a free one).")
    var listen: String?

    func run() async throws {
        // Before anything holds a secret: the process's memory and /proc entries (environ) are not readable by
        // other processes of the same user, such as a script it runs.
        _ = mlhook_set_undumpable()
        if let listen, MLHookConfig.parseListen(listen) == nil {
            printError("--listen: expected host:port (\"127.0.0.1:8080\", \"[::1]:8080\"), got \"\(listen)\"")
            throw ExitCode(2)
        }
        let loaded = try options.load(environment: listen.map { ["MLHOOK_LISTEN": $0] } ?? [:])
        // Before the store, aml-local and the workers start (and then stop again, each saying so): an address that
        // cannot be listened on is one line, naming it.
        let server = loaded.config.server
        if let problem = ListenProbe.problem(host: server.host, port: server.port) {
            printError("cannot listen on \(server.host):\(server.port): \(problem)")
            throw ExitCode(1)
        }
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
        do {
            try await ServiceGroup(configuration: group).run()
        } catch let error as IOError {
            // Taken between the probe and the listener (or a TLS listener's own failure).
            printError("cannot listen on \(config.server.host):\(config.server.port): \(String(cString: strerror(error.errnoCode)).lowercased())")
            throw ExitCode(1)
        }
        logger.notice("mlhook stopped")
    }
}

/// Whether an address can be listened on, tried with a socket of the same kind as the listener's.
enum ListenProbe {
    /// Why `host:port` cannot be bound now, in words with what to do, or nil when it can (port 0 always can).
    static func problem(host: String, port: Int) -> String? {
        guard port != 0 else { return nil }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { return "cannot resolve \(host): \(String(cString: gai_strerror(rc)))" }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return nil }  // the listener will say what is wrong
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 else { return nil }
        switch errno {
        case EADDRINUSE: return "the address is in use (another mlhook, or another program, holds the port): stop it, or set server.listen or MLHOOK_LISTEN"
        case EACCES: return "permission denied (ports below 1024 need privileges): use a higher port"
        case EADDRNOTAVAIL: return "no interface of this machine has that address"
        default: return String(cString: strerror(errno)).lowercased()
        }
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
