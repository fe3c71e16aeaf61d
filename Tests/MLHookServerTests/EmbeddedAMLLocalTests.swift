import Foundation
import MLHookCore
import TestSupport
import Testing

/// `mlhook serve` starts the local Azure-ML-compatible server when azureml.mode is local (the default).
@Suite struct EmbeddedAMLLocalTests {
    func config(_ dir: TemporaryDirectory, mode: String) -> String {
        """
        server: { listen: "127.0.0.1:0" }
        store: { path: "\(dir.file("m.db"))" }
        azureml: { mode: \(mode), local: { data_dir: "\(dir.file("aml"))", listen: "127.0.0.1:0" } }
        sources:
          - { name: github, type: github, secrets: [ { env: A } ] }
        """
    }

    @Test func serveRunsTheEmbeddedServerInLocalMode() async throws {
        let dir = try TemporaryDirectory("mlhook-embedded")
        defer { dir.remove() }
        try config(dir, mode: "local").write(toFile: dir.file("c.yaml"), atomically: true, encoding: .utf8)
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("c.yaml")], environment: ["A": "a"], directory: dir.path)
        #expect(try await eventually { server.log.contains("embedded aml-local") })
        let data = try #require(FileManager.default.contents(atPath: dir.file("aml/credentials.json")))
        let creds = try #require(JSONValue(json: [UInt8](data)))
        let base = try #require(creds["base_url"]?.string)
        let port = try #require(Int(base.split(separator: ":").last ?? ""))
        let discovery = RawHTTP.exchange(port: port, Array("GET /discovery HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8),
                                         closeAfterWrite: false)
        #expect(discovery.hasPrefix("HTTP/1.1 200") && discovery.contains("\"modelmanagement\":\"\(base)\""))
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
    }

    @Test func cloudModeStartsNoLocalServer() async throws {
        let dir = try TemporaryDirectory("mlhook-cloud")
        defer { dir.remove() }
        try config(dir, mode: "cloud").write(toFile: dir.file("c.yaml"), atomically: true, encoding: .utf8)
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("c.yaml")], environment: ["A": "a"], directory: dir.path)
        try await Task.sleep(for: .milliseconds(300))
        #expect(!server.log.contains("embedded aml-local"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("aml")))
        server.signal(SIGTERM)
        #expect(try await server.waitForExit() == 0)
    }
}
