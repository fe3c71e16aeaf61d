import AMLLocal
import ArgumentParser
import CProcessControl
import MLHookCore
import MLHookServer
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

struct AMLLocalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aml-local",
        abstract: "Run the local Azure-ML-compatible server: AAD tokens, ARM, discovery, run history, execution, models (v1) and code assets, jobs, models, endpoints (v2) on one URL.",
        discussion: """
            Runs are real: startrun unpacks the zip and runs the script with python3; a v2 command job runs its command \
            in the uploaded code asset. A fresh data directory is seeded with a tenant, subscription, resource group, \
            workspace, compute cpu-cluster (max 2 nodes) and a service principal; DIR/credentials.json holds them with \
            the secret, base_url and, with the HTTPS listener (its certificate is made in DIR/tls), https_base_url and ca_file.
            """
    )

    @Option(help: "Port to listen on (0 picks a free one).") var port = 8940
    @Option(name: .customLong("https-port"),
            help: "Port of the HTTPS listener (0 picks a free one), on a self-signed certificate made in DATA-DIR/tls at first start; the official v2 SDK sends tokens only over TLS.")
    var httpsPort = 0
    @Flag(name: .customLong("no-https"), help: "Do not listen with TLS.") var noHTTPS = false
    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(name: .customLong("data-dir"), help: "State, projects, run directories and logs.") var dataDir = ".mlhook/aml-local"
    @Option(help: "The interpreter that runs scripts.") var interpreter = "python3"
    @Option(help: "A YAML file with extra service principals: principals: [{ tenant_id, client_id, client_secret: { env: NAME } }].")
    var config: String?
    @Option(help: "How scripts are confined: required (bubblewrap, or no start), auto (bubblewrap when it works), off.")
    var confinement: String = "required"
    @Option(help: "The network a confined script gets: isolated (its own loopback only) or host.")
    var network: String = "isolated"

    func run() async throws {
        // The server holds the token key and the service principal's secret: not readable through /proc by the
        // scripts it runs.
        _ = mlhook_set_undumpable()
        let logger = bootstrapLogging(.init())
        var settings = AMLLocalSettings(dataDirectory: dataDir)
        settings.interpreter = interpreter
        guard let mode = RunConfinement(rawValue: confinement) else {
            printError("--confinement must be auto, required or off")
            throw ExitCode(2)
        }
        settings.confinement = mode
        guard let net = RunNetwork(rawValue: network) else {
            printError("--network must be isolated or host")
            throw ExitCode(2)
        }
        settings.network = net
        let aml: AMLLocal
        do { aml = try AMLLocal(settings: settings, logger: logger) } catch {
            printError("aml-local cannot start (data directory \(dataDir)): \(error)")
            throw ExitCode(1)
        }
        if let config {
            do {
                guard let data = FileManager.default.contents(atPath: config) else {
                    throw ConfigError([ConfigIssue(file: config, line: 0, key: "", message: "cannot read the file")])
                }
                let parsed = try AMLLocalFileConfig.parse(yaml: String(decoding: data, as: UTF8.self), file: config)
                let resolver = SecretResolver()
                for (i, p) in parsed.principals.enumerated() {
                    let secret = try resolver.resolve(p.secret, key: "principals[\(i)].client_secret")
                    try aml.addPrincipal(tenantID: p.tenantID, clientID: p.clientID, secret: secret.text)
                }
                logger.notice("aml-local: \(parsed.principals.count) service principal(s) from \(config)")
            } catch let error as ConfigError {
                printError("\(config) is invalid:\n\(error.description)")
                throw ExitCode(2)
            }
        }
        // Both listeners serve the same routes; credentials.json is written once every port is known.
        let ports = Mutex<(http: Int?, https: Int?)>((nil, noHTTPS ? -1 : nil))
        let dataDir = self.dataDir, host = self.host
        @Sendable func announce(http: Int? = nil, https: Int? = nil) {
            let ready = ports.withLock { p -> (Int, Int?)? in
                if let http { p.http = http }
                if let https { p.https = https }
                guard let h = p.http, let t = p.https else { return nil }
                return (h, t < 0 ? nil : t)
            }
            guard let (bound, tls) = ready else { return }
            do { try aml.bound(port: bound, host: host, httpsPort: tls) } catch { logger.error("cannot write credentials.json: \(error)") }
            let c = aml.credentials
            let also = tls.map { " and https://\(host):\($0)" } ?? ""
            logger.notice("aml-local listening on http://\(host):\(bound)\(also)")
            FileHandle.standardOutput.write(Data("""
                aml-local is serving every Azure ML host kind at http://\(host):\(bound)\(tls.map { " and https://\(host):\($0)" } ?? "")
                  tenant_id:       \(c.tenantID)
                  client_id:       \(c.clientID)
                  subscription_id: \(c.subscriptionID)
                  resource_group:  \(c.resourceGroup)
                  workspace:       \(c.workspace)
                  compute:         cpu-cluster (max 2 nodes)
                  client_secret:   in \(dataDir)/credentials.json (with everything above, base_url\(tls == nil ? "" : ", https_base_url and ca_file"))

                """.utf8))
        }
        let app = Application(
            router: aml.router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "aml-local"),
            onServerRunning: { channel in announce(http: channel.localAddress?.port ?? port) },
            logger: logger
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app)]
        if !noHTTPS {
            let files: (certificate: String, key: String)
            do { files = try aml.tlsFiles() } catch {
                printError("cannot make the TLS certificate in \(dataDir)/tls: \(error)")
                throw ExitCode(1)
            }
            let server = try MLHookRuntime.tlsServer(TLSConfig(certificateFile: files.certificate, keyFile: files.key), http1: .init())
            let tlsApp = Application(
                router: aml.router(), server: server,
                configuration: .init(address: .hostname(host, port: httpsPort), serverName: "aml-local"),
                onServerRunning: { channel in announce(https: channel.localAddress?.port ?? httpsPort) },
                logger: logger
            )
            services.append(.init(service: tlsApp))
        }
        defer { aml.shutdown() }
        try await ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }
}
