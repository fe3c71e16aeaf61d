import AMLLocal
import AsyncHTTPClient
import AzureML
import NIOCore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
import TestSupport
import Testing

/// mlhook's Azure ML client against the local Azure-ML-compatible server, over real sockets.
@Suite struct ClientAgainstAMLLocalTests {
    /// Runs `body` with a client logged in as the seeded service principal.
    func withClient(v2: Bool = false, _ body: @escaping @Sendable (HTTPAzureMLClient, AMLLocal, TemporaryDirectory) async throws -> Void) async throws {
        let dir = try TemporaryDirectory("azureml-client")
        defer { dir.remove() }
        var settings = AMLLocalSettings(dataDirectory: dir.file("aml"))
        settings.provisioningDelay = 0.1
        let aml = try AMLLocal(settings: settings, logger: Logger(label: "aml"))
        let app = Application(router: aml.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ch in try? aml.bound(port: ch.localAddress?.port ?? 0) })
        try await app.test(.live) { client in
            let c = aml.credentials
            let base = "http://127.0.0.1:\(client.port!)"
            var s = AzureMLSettings(credential: .servicePrincipal(tenantID: c.tenantID, clientID: c.clientID, secret: c.clientSecret, v2: v2),
                                    subscriptionID: c.subscriptionID, resourceGroup: c.resourceGroup, workspace: c.workspace)
            s.authorityURL = base
            s.armURL = base
            try await body(HTTPAzureMLClient(settings: s), aml, dir)
        }
        aml.shutdown()
    }

    @Test func armDiscoveryAndComputes() async throws {
        try await withClient { api, _, _ in
            #expect(try await api.resourceGroups().map { $0["name"]?.string } == ["mlhook-local"])
            #expect(try await api.workspaces().count == 1)
            let discovery = try await api.discovery()
            #expect(discovery["history"]?.string?.hasPrefix("http://127.0.0.1:") == true)
            let created = try await api.createCompute("gpu-box", body: [
                "location": "local", "properties": ["computeType": "AmlCompute", "properties": ["vmSize": "Standard_NC6",
                    "scaleSettings": ["maxNodeCount": 1, "minNodeCount": 0]]]])
            #expect(created.value(at: "properties.provisioningState")?.string == "Succeeded", "waited for provisioning")
            let scaled = try await api.scaleCompute("gpu-box", minNodes: 0, maxNodes: 3, idleSeconds: 600)
            #expect(scaled.value(at: "properties.properties.scaleSettings.maxNodeCount")?.int == 3)
            #expect(scaled.value(at: "properties.provisioningState")?.string == "Succeeded")
            #expect(try await api.computes().count == 2)
            try await api.deleteCompute("gpu-box")
            try await api.deleteCompute("gpu-box")  // already gone: done
            await #expect(throws: AzureMLError.self) { _ = try await api.compute("gpu-box") }
            let ws = try await api.createOrUpdateWorkspace("second", body: ["location": "local", "properties": ["friendlyName": "Second"]])
            #expect(ws.value(at: "properties.provisioningState")?.string == "Succeeded", "followed the long-running operation")
            try await api.deleteWorkspace("second")
        }
    }

    @Test func aZippedFolderRunsToCompletedAndIsWatched() async throws {
        try await withClient(v2: true) { api, _, dir in
            let src = dir.file("src")
            try FileManager.default.createDirectory(atPath: src + "/.git", withIntermediateDirectories: true)
            try "secret-git-config".write(toFile: src + "/.git/config", atomically: true, encoding: .utf8)
            try "import sys\nprint('trained', sys.argv[1:])\n".write(toFile: src + "/train.py", atomically: true, encoding: .utf8)
            let zip = try SourceZipper.zip(directory: URL(fileURLWithPath: src))
            let again = try SourceZipper.zip(directory: URL(fileURLWithPath: src))
            #expect(!String(decoding: zip, as: UTF8.self).contains("secret-git-config"), "no .git")
            #expect(zip == again, "the same tree zips to the same bytes")
            let definition: JSONValue = ["Configuration": ["Script": "train.py", "Arguments": ["--lr", "0.1"], "Target": "cpu-cluster"]]
            let id = try await api.startRun(experiment: "client-demo", zip: zip, definition: definition, runID: "client-run-1")
            #expect(id == "client-run-1")
            // A retried start with the same id never creates a second run.
            #expect(try await api.startRun(experiment: "client-demo", zip: zip, definition: definition, runID: "client-run-1") == "client-run-1")
            var statuses: [String] = []
            for try await status in api.watch(experiment: "client-demo", runID: id, minInterval: 0.02) { statuses.append(status) }
            #expect(statuses.last == "Completed", "\(statuses)")
            let details = try await api.runDetails(experiment: "client-demo", runID: id)
            #expect(details["logFiles"]?.object.keys.contains("azureml-logs/70_driver_log.txt") == true)
            #expect(try await api.experiments().compactMap { $0["name"]?.string }.contains("client-demo"))
            #expect(try await api.experimentsByGet().compactMap { $0["name"]?.string }.contains("client-demo"), "the article's GET form")
            #expect(try await api.experiment("made-by-get").value(at: "name")?.string == "made-by-get", "get or create")
        }
    }

    @Test func cancelAModelsLifecycleAndScoring() async throws {
        try await withClient { api, aml, dir in
            let zip = try Zips.folder(dir, ["sleep.py": "import time\ntime.sleep(30)\n"])
            let id = try await api.startRun(experiment: "e", zip: zip, definition: ["configuration": ["script": "sleep.py", "target": "cpu-cluster"]], runID: "to-cancel")
            for try await s in api.watch(experiment: "e", runID: id, minInterval: 0.02) where s == "Running" {
                try await api.cancelRun(experiment: "e", runID: id)
            }
            #expect(try await api.run(experiment: "e", runID: id)["status"]?.string == "Canceled")

            let modelDir = dir.file("model")
            try FileManager.default.createDirectory(atPath: modelDir, withIntermediateDirectories: true)
            try "import json\ndef run(raw):\n    return {'n': len(json.loads(raw)['data'])}\n".write(toFile: modelDir + "/score.py", atomically: true, encoding: .utf8)
            let registered = try await api.registerModel(["name": "m", "url": .string("file://\(modelDir)"), "mimeType": "application/octet-stream"])
            #expect(registered["id"]?.string == "m:1")
            // Deploy m:1 (aml-local's local deployment route), then score through the client with the service key.
            let c = aml.credentials
            var tokenRequest = HTTPClientRequest(url: "\(api.settings.armURL)/\(c.tenantID)/oauth2/token")
            tokenRequest.method = .POST
            tokenRequest.body = .bytes(ByteBuffer(string: "grant_type=client_credentials&client_id=\(c.clientID)&client_secret=\(c.clientSecret)&resource=x"))
            let tokenBody = try await HTTPClient.shared.execute(tokenRequest, timeout: .seconds(10)).body.collect(upTo: 1 << 16)
            let token = JSONValue(json: Array(tokenBody.readableBytesView))?["access_token"]?.string ?? ""
            var deploy = HTTPClientRequest(url: "\(api.settings.armURL)/modelmanagement/v1.0\(api.settings.workspacePath)/services/m-svc")
            deploy.method = .PUT
            deploy.headers.add(name: "Authorization", value: "Bearer \(token)")
            deploy.body = .bytes(ByteBuffer(string: #"{"modelId":"m:1"}"#))
            let deployed = JSONValue(json: Array(try await HTTPClient.shared.execute(deploy, timeout: .seconds(10)).body.collect(upTo: 1 << 16).readableBytesView)) ?? .null
            var keys = HTTPClientRequest(url: "\(api.settings.armURL)/modelmanagement/v1.0\(api.settings.workspacePath)/services/m-svc/listkeys")
            keys.method = .POST
            keys.headers.add(name: "Authorization", value: "Bearer \(token)")
            let key = JSONValue(json: Array(try await HTTPClient.shared.execute(keys, timeout: .seconds(10)).body.collect(upTo: 1 << 16).readableBytesView))?["primaryKey"]?.string ?? ""
            let scored = try await api.score(uri: deployed["scoringUri"]?.string ?? "", key: key, data: [[1, 2], [3]])
            #expect(scored == ["n": 2])
            await #expect(throws: AzureMLError.self) { _ = try await api.score(uri: deployed["scoringUri"]?.string ?? "", key: "wrong", data: []) }
            _ = try await api.registerModel(["name": "m", "url": "aml://x", "mimeType": "application/octet-stream"])
            #expect(try await api.models(name: "m").count == 2)
            #expect(try await api.model("m:2")["version"]?.int == 2, "ids are percent-encoded on the way")
            try await api.deleteModel("m:2")
            try await api.deleteModel("m:2")  // 204: already gone counts as done
            await #expect(throws: AzureMLError.self) { _ = try await api.model("m:2") }
        }
    }
}

enum Zips {
    static func folder(_ dir: TemporaryDirectory, _ files: [String: String]) throws -> [UInt8] {
        let src = dir.file("zip-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        for (name, text) in files { try text.write(toFile: src + "/" + name, atomically: true, encoding: .utf8) }
        return try SourceZipper.zip(directory: URL(fileURLWithPath: src))
    }
}

@Suite struct SourceZipperTests {
    @Test func linksLeavingTheFolderAndOversizeTreesAreRefused() throws {
        let dir = try TemporaryDirectory("zipper")
        defer { dir.remove() }
        let src = dir.file("src")
        try FileManager.default.createDirectory(atPath: src + "/sub", withIntermediateDirectories: true)
        try "print(1)".write(toFile: src + "/sub/a.py", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: src + "/inside", withDestinationPath: src + "/sub/a.py")
        let ok = try SourceZipper.zip(directory: URL(fileURLWithPath: src))
        #expect(!ok.isEmpty, "a link that stays inside the folder is fine")
        try FileManager.default.createSymbolicLink(atPath: src + "/escape", withDestinationPath: "/etc/hostname")
        #expect(throws: SourceZipper.Failure.self) { try SourceZipper.zip(directory: URL(fileURLWithPath: src)) }
        try FileManager.default.removeItem(atPath: src + "/escape")
        try String(repeating: "x", count: 5000).write(toFile: src + "/big.txt", atomically: true, encoding: .utf8)
        do {
            _ = try SourceZipper.zip(directory: URL(fileURLWithPath: src), maxBytes: 4096)
            Issue.record("an oversize tree was zipped")
        } catch {
            #expect(error.description.contains("larger than 4096 bytes"))
        }
    }
}
