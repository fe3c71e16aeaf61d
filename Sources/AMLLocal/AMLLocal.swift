import Foundation
import Hummingbird
import Logging
import MLHookCore
import Signing

/// What a fresh data directory is seeded with, and what `credentials.json` holds.
public struct AMLLocalCredentials: Codable, Sendable, Equatable {
    public var tenantID: String
    public var clientID: String
    public var clientSecret: String
    public var subscriptionID: String
    public var resourceGroup: String
    public var workspace: String
    public var baseURL: String
    /// The HTTPS listener's base URL (the official v2 SDK sends tokens only over TLS), when there is one.
    public var httpsBaseURL: String?
    /// The PEM certificate of the HTTPS listener: what a client trusts (`REQUESTS_CA_BUNDLE`, `curl --cacert`).
    public var caFile: String?

    enum CodingKeys: String, CodingKey {
        case tenantID = "tenant_id", clientID = "client_id", clientSecret = "client_secret", subscriptionID = "subscription_id"
        case resourceGroup = "resource_group", workspace, baseURL = "base_url", httpsBaseURL = "https_base_url", caFile = "ca_file"
    }
}

/// Builds the local Azure-ML-compatible server over a data directory.
public struct AMLLocal: Sendable {
    public let server: AMLLocalServer
    public let settings: AMLLocalSettings
    /// The seeded identity and names (also written to `DIR/credentials.json` once the port is known).
    public let credentials: AMLLocalCredentials
    /// Held while this server uses the data directory.
    let lock: DataDirectoryLock

    /// Opens (seeding when fresh) the data directory and marks runs interrupted by a previous stop as Failed.
    public init(settings: AMLLocalSettings, logger: Logger) throws {
        try FileManager.default.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        lock = try DataDirectoryLock(directory: settings.dataDirectory)
        let store = try AMLLocalStore(dataDirectory: settings.dataDirectory)
        let tokens = try TokenIssuer(keyFile: settings.dataDirectory + "/token.key", lifetime: settings.tokenLifetime)
        var sandbox = try RunSandbox.prepare(settings.confinement, interpreter: settings.interpreter, logger: logger)
        sandbox.network = settings.network
        sandbox.limits = settings.limits
        let executor = RunExecutor(store: store, settings: settings, sandbox: sandbox, logger: logger)
        try executor.recover()
        self.settings = settings
        self.credentials = try Self.seed(store, settings: settings)
        self.server = AMLLocalServer(store: store, tokens: tokens, executor: executor, sandbox: sandbox, settings: settings, logger: logger)
        // Uploads cut short by a crash are not blobs: the spool is emptied while the lock is held.
        try? FileManager.default.removeItem(at: server.incomingDirectory)
    }

    /// Seeds one tenant, subscription, resource group, workspace, `cpu-cluster` (max 2 nodes) and a service
    /// principal with a random secret; on later starts, reads them back.
    static func seed(_ store: AMLLocalStore, settings: AMLLocalSettings) throws -> AMLLocalCredentials {
        if let saved = try store.get("seed", "", "credentials"), let data = saved.text.data(using: .utf8),
           let c = try? JSONDecoder().decode(AMLLocalCredentials.self, from: data) {
            return c
        }
        let c = AMLLocalCredentials(tenantID: settings.tenant, clientID: UUID().uuidString.lowercased(),
                                    clientSecret: ByteEncoding.hex(ConstantTime.randomBytes(24)),
                                    subscriptionID: UUID().uuidString.lowercased(), resourceGroup: "mlhook-local",
                                    workspace: "mlhook-local", baseURL: "")
        try store.put("principal", c.tenantID.lowercased(), c.clientID,
                      ["clientId": .string(c.clientID), "secretSHA256": .string(Digest.sha256Hex(Array(c.clientSecret.utf8)))])
        try store.put("group", c.subscriptionID.lowercased(), c.resourceGroup, [
            "id": .string("/subscriptions/\(c.subscriptionID)/resourceGroups/\(c.resourceGroup)"), "name": .string(c.resourceGroup),
            "type": "Microsoft.Resources/resourceGroups", "location": "local", "properties": ["provisioningState": "Succeeded"],
        ])
        let wsID = "/subscriptions/\(c.subscriptionID)/resourceGroups/\(c.resourceGroup)/providers/Microsoft.MachineLearningServices/workspaces/\(c.workspace)"
        try store.put("workspace", AMLLocalServer.groupKey(c.subscriptionID, c.resourceGroup), c.workspace,
                      AMLLocalServer.workspaceBody(id: wsID, name: c.workspace, location: "local", tenant: c.tenantID,
                                                   base: "", properties: [:], existing: nil))
        let wsKey = AMLLocalServer.workspaceKey(c.subscriptionID, c.resourceGroup, c.workspace)
        try store.put("compute", wsKey, "cpu-cluster", [
            "id": .string(wsID + "/computes/cpu-cluster"), "name": "cpu-cluster", "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": "local",
            "properties": ["computeType": "AmlCompute", "provisioningState": "Succeeded", "createdOn": .string(AMLLocalServer.now()),
                           "modifiedOn": .string(AMLLocalServer.now()), "isAttachedCompute": false,
                           "properties": ["vmSize": "Standard_D1", "vmPriority": "Dedicated", "allocationState": "Steady",
                                          "scaleSettings": ["maxNodeCount": 2, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT30M"]]],
        ])
        let encoded = try JSONEncoder().encode(c)
        try store.put("seed", "", "credentials", JSONValue(json: [UInt8](encoded)) ?? [:])
        return c
    }

    /// Records the bound base URLs and writes `DIR/credentials.json` (mode 0600).
    /// - Parameter httpsPort: The TLS listener's port, when there is one (its certificate is `tlsFiles().certificate`).
    public func bound(port: Int, host: String = "127.0.0.1", httpsPort: Int? = nil) throws {
        let base = "http://\(host):\(port)"
        settings.base.value.withLock { $0 = base }
        var c = credentials
        c.baseURL = base
        if let httpsPort {
            let https = "https://\(host):\(httpsPort)"
            settings.httpsBase.value.withLock { $0 = https }
            c.httpsBaseURL = https
            c.caFile = URL(fileURLWithPath: Self.tlsPaths(settings.dataDirectory).certificate).standardizedFileURL.path
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = settings.dataDirectory + "/credentials.json"
        try? FileManager.default.removeItem(atPath: path)
        guard FileManager.default.createFile(atPath: path, contents: try encoder.encode(c), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        // Runs the last stop cut short start again now that their scripts can reach the server.
        server.executor.resumeRecovered()
    }

    /// Where the TLS listener's certificate and key live in a data directory.
    static func tlsPaths(_ dataDirectory: String) -> (certificate: String, key: String) {
        let dir = URL(fileURLWithPath: dataDirectory).standardizedFileURL.path
        return (dir + "/tls/cert.pem", dir + "/tls/key.pem")
    }

    /// The TLS listener's certificate and key files, made at first use: a self-signed certificate for
    /// localhost and 127.0.0.1 that is its own CA (clients trust the certificate file itself).
    /// - Throws: when libcrypto cannot make one or the files cannot be written.
    public func tlsFiles() throws -> (certificate: String, key: String) {
        let paths = Self.tlsPaths(settings.dataDirectory)
        let fm = FileManager.default
        if fm.fileExists(atPath: paths.certificate), fm.fileExists(atPath: paths.key) { return paths }
        guard let made = SelfSignedCertificate.make(commonName: "aml-local", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1", "::1"]) else {
            throw AMLError(.internalServerError, "ServiceError", "libcrypto could not make a TLS certificate")
        }
        try fm.createDirectory(atPath: (paths.key as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                               attributes: [.posixPermissions: 0o700])
        // The key first and private; the certificate last, so a crash in between makes a new pair next time.
        try? fm.removeItem(atPath: paths.key)
        guard fm.createFile(atPath: paths.key, contents: Data(made.privateKeyPEM.utf8), attributes: [.posixPermissions: 0o600]),
              fm.createFile(atPath: paths.certificate, contents: Data(made.certificatePEM.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: paths.certificate])
        }
        return paths
    }

    /// Adds (or replaces the secret of) a service principal that may get tokens.
    public func addPrincipal(tenantID: String, clientID: String, secret: String) throws {
        try server.store.put("principal", tenantID.lowercased(), clientID,
                             ["clientId": .string(clientID), "secretSHA256": .string(Digest.sha256Hex(Array(secret.utf8)))])
    }

    /// Stops all runs (their process groups are killed); call when the server stops.
    public func shutdown() {
        server.executor.shutdown()
        lock.release()
    }

    /// A router serving every host kind at the root.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        server.addRoutes(to: router)
        return router
    }
}

extension AMLLocal {
    /// Deletes the projects of runs that ended before `cutoff` (their records and logs stay).
    /// - Returns: How many runs were pruned.
    @discardableResult
    public func pruneRuns(endedBefore cutoff: Date) throws -> Int { try server.pruneRuns(endedBefore: cutoff) }
}

extension AMLLocal {
    /// The port to listen on when none is configured (0): the one `credentials.json` recorded last time, if it is
    /// free, so saved credentials and `mlhook aml --config` keep working across restarts; else 0 (any free port).
    public static func rememberedPort(dataDirectory: String, host: String) -> Int {
        guard let data = FileManager.default.contents(atPath: dataDirectory + "/credentials.json"),
              let saved = try? JSONDecoder().decode(AMLLocalCredentials.self, from: data),
              let port = URL(string: saved.baseURL)?.port, (1...65535).contains(port), isFree(port: port, host: host) else { return 0 }
        return port
    }

    /// Whether a TCP port can be bound on `host` now.
    static func isFree(port: Int, host: String) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }
}
