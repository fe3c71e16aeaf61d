import AMLLocal
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
import NIOCore
import TestSupport
import ZIPFoundation

/// A live aml-local on 127.0.0.1, port 0, over a temporary data directory.
struct AMLHarness {
    let dir: TemporaryDirectory
    let aml: AMLLocal
    let logs = CapturedLogs()

    init(dir: TemporaryDirectory? = nil, provisioningDelay: TimeInterval = 0.2, tokenLifetime: TimeInterval = 3600,
         now: @escaping @Sendable () -> Date = { Date() }, confinement: RunConfinement = .required, network: RunNetwork = .isolated,
         limits: RunLimits = RunLimits()) throws {
        self.dir = try dir ?? TemporaryDirectory("aml-local")
        var settings = AMLLocalSettings(dataDirectory: self.dir.path)
        settings.provisioningDelay = provisioningDelay
        settings.tokenLifetime = tokenLifetime
        settings.now = now
        settings.confinement = confinement
        settings.network = network
        settings.limits = limits
        aml = try AMLLocal(settings: settings, logger: logs.logger(level: .info))
    }

    var c: AMLLocalCredentials { aml.credentials }
    var ws: String { "subscriptions/\(c.subscriptionID)/resourceGroups/\(c.resourceGroup)/providers/Microsoft.MachineLearningServices/workspaces/\(c.workspace)" }

    func app() -> some ApplicationProtocol {
        let aml = self.aml
        return Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
    }

    /// Runs `body` against a live server.
    func live(_ body: @escaping @Sendable (AMLClient) async throws -> Void) async throws {
        try await app().test(.live) { client in try await body(AMLClient(client: client, harness: self)) }
    }
}

/// Requests against the harness, with a token.
struct AMLClient: @unchecked Sendable {
    // @unchecked: the test client is used only from the test's own task.
    let client: any TestClientProtocol
    let harness: AMLHarness

    struct Reply {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let text: String
        var json: JSONValue { JSONValue(json: Array(text.utf8)) ?? .null }
    }

    func request(_ method: HTTPRequest.Method, _ uri: String, token: String?, headers: [(String, String)] = [],
                 body: [UInt8]? = nil) async throws -> Reply {
        var fields = HTTPFields()
        if let token { fields[.authorization] = "Bearer \(token)" }
        for (k, v) in headers { fields[HTTPField.Name(k)!] = v }
        return try await client.execute(uri: uri, method: method, headers: fields, body: body.map { ByteBuffer(bytes: $0) }) { res in
            Reply(status: res.status, headers: res.headers, text: String(buffer: res.body))
        }
    }

    func token(v2: Bool = false, secret: String? = nil) async throws -> Reply {
        let c = harness.c
        let form = v2
            ? "client_id=\(c.clientID)&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&client_secret=\(secret ?? c.clientSecret)&grant_type=client_credentials"
            : "grant_type=client_credentials&client_id=\(c.clientID)&client_secret=\(secret ?? c.clientSecret)&resource=https%3A%2F%2Fmanagement.azure.com%2F"
        return try await request(.post, v2 ? "/\(c.tenantID)/oauth2/v2.0/token" : "/\(c.tenantID)/oauth2/token", token: nil,
                                 headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8))
    }

    func accessToken() async throws -> String { try await token().json["access_token"]?.string ?? "" }

    /// Starts a run from files and a definition.
    func startRun(_ token: String, experiment: String = "demo", files: [String: String], definition: String,
                  runID: String? = nil, zip: [UInt8]? = nil) async throws -> Reply {
        let boundary = "----mlhook\(UUID().uuidString.prefix(8))"
        var body: [UInt8] = []
        func part(_ name: String, _ filename: String, _ data: [UInt8]) {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            body += data + Array("\r\n".utf8)
        }
        part("projectZipFile", "train.zip", try zip ?? Zips.make(files))
        part("runDefinitionFile", "definition.json", Array(definition.utf8))
        body += Array("--\(boundary)--\r\n".utf8)
        let q = runID.map { "?runId=\($0)" } ?? "?api-version=2019-11-01"
        return try await request(.post, "/execution/v1.0/\(harness.ws)/experiments/\(experiment)/startrun\(q)", token: token,
                                 headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")], body: body)
    }

    /// Polls `value` until it equals `expected` or 10 s pass.
    func until<T: Equatable>(_ expected: T, _ value: () async throws -> T?) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await value() == expected { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Polls a run until it reaches one of `statuses` or 30 s pass.
    func waitFor(_ token: String, run: String, experiment: String = "demo", _ statuses: Set<String>) async throws -> JSONValue {
        let deadline = ContinuousClock.now + .seconds(30)
        var last: JSONValue = .null
        while ContinuousClock.now < deadline {
            last = try await request(.get, "/history/v1.0/\(harness.ws)/experiments/\(experiment)/runs/\(run)", token: token).json
            if let s = last["status"]?.string, statuses.contains(s) { return last }
            try await Task.sleep(for: .milliseconds(50))
        }
        return last
    }
}

/// Zip archives for uploads, made in memory.
enum Zips {
    static func make(_ files: [String: String], symlinks: [String: String] = [:]) throws -> [UInt8] {
        let archive = try Archive(data: Data(), accessMode: .create)
        for (path, text) in files.sorted(by: { $0.key < $1.key }) {
            let data = Data(text.utf8)
            try archive.addEntry(with: path, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .deflate) { pos, size in
                data.subdata(in: Int(pos)..<Int(pos) + size)
            }
        }
        for (path, target) in symlinks {
            let data = Data(target.utf8)
            try archive.addEntry(with: path, type: .symlink, uncompressedSize: Int64(data.count)) { pos, size in
                data.subdata(in: Int(pos)..<Int(pos) + size)
            }
        }
        return [UInt8](archive.data ?? Data())
    }
}
