import AsyncHTTPClient
import Foundation
import MLHookCore
import NIOCore
import TestSupport
import Testing

/// aml-local's blob names and code URIs, as an attacker sends them to the real `mlhook aml-local`: each name is
/// decoded once and must stay under its folder. Before, `..%2F` passed the `..` check (the path was split before it
/// was decoded) and a PUT overwrote a file beside the data directory (mlhook.yaml, whose hot reload then took the
/// attacker's admin token), and a code URI with `..%252F` (decoded twice) copied any folder into a job.
@Suite struct AMLLocalPathEscapeTests {
    struct Server {
        let aml: AMLLocalProcess
        let port: Int
        let token: String
        var ws: String {
            "subscriptions/\(aml.credential("subscription_id"))/resourceGroups/\(aml.credential("resource_group"))/providers/Microsoft.MachineLearningServices/workspaces/\(aml.credential("workspace"))"
        }

        static func start(in dir: TemporaryDirectory) async throws -> Server {
            let aml = try await AMLLocalProcess.start(in: dir)
            let base = aml.credential("base_url")
            let port = try #require(URLComponents(string: base)?.port)
            var request = HTTPClientRequest(url: "\(base)/\(aml.credential("tenant_id"))/oauth2/token")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: "grant_type=client_credentials&client_id=\(aml.credential("client_id"))&client_secret=\(aml.credential("client_secret"))&resource=https%3A%2F%2Fmanagement.azure.com%2F"))
            let reply = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let json = JSONValue(json: Array(try await reply.body.collect(upTo: 1 << 20).readableBytesView))
            return Server(aml: aml, port: port, token: try #require(json?["access_token"]?.string))
        }

        /// One request sent byte for byte as written (no client normalizes its path). - Returns: status and body.
        func raw(_ method: String, _ target: String, headers: [String] = [], body: String = "") async -> (status: Int, text: String) {
            let request = ([ "\(method) \(target) HTTP/1.1", "Host: 127.0.0.1:\(port)", "Authorization: Bearer \(token)",
                             "Content-Length: \(body.utf8.count)", "Connection: close" ] + headers).joined(separator: "\r\n") + "\r\n\r\n" + body
            let port = self.port
            let answer = await offCooperativePool { RawHTTP.exchange(port: port, Array(request.utf8), closeAfterWrite: false) }
            let status = answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
            return (status, answer)
        }

        /// A code upload's container path and SAS query.
        func upload() async throws -> (container: String, sas: String) {
            let r = await raw("POST", "/\(ws)/codes/c1/versions/1/startPendingUpload?api-version=2023-04-01",
                              headers: ["Content-Type: application/json"], body: #"{"pendingUploadType":"TemporaryBlobReference"}"#)
            let json = try #require(JSONValue(json: Array((r.text.components(separatedBy: "\r\n\r\n").last ?? "").utf8)), "\(r.text)")
            let blob = try #require(json.value(at: "blobReferenceForConsumption.blobUri")?.string)
            let sas = try #require(json.value(at: "blobReferenceForConsumption.credential.sasUri")?.string)
            let path = try #require(URLComponents(string: blob)?.percentEncodedPath)
            // The container: /blob/{account}/{container}
            let container = path.split(separator: "/").prefix(3).joined(separator: "/")
            return ("/" + container, String(sas.split(separator: "?")[1]))
        }
    }

    /// Names that leave the container once decoded, or are encoded to hide a separator.
    static let escapes = [
        "..%2F..%2F..%2F..%2Fmlhook.yaml", "..%2f..%2f..%2f..%2fmlhook.yaml", "%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fmlhook.yaml",
        "..%252F..%252F..%252F..%252Fmlhook.yaml", "..%5C..%5C..%5C..%5Cmlhook.yaml", "..\\..\\..\\..\\mlhook.yaml",
        "%2F" + "ABSOLUTE", "sub/..%2F..%2F..%2F..%2F..%2Fmlhook.yaml", "mlhook.yaml%00.txt", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/mlhook.yaml",
    ]

    @Test func blobNamesCannotWriteOutsideTheirContainer() async throws {
        let dir = try TemporaryDirectory("aml-blob-escape")
        defer { dir.remove() }
        let config = dir.file("mlhook.yaml")
        try "admin_token: original\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try await Server.start(in: dir)
        defer { server.aml.process.signal(SIGTERM) }
        let (container, sas) = try await server.upload()
        for name in Self.escapes {
            let target = "\(container)/\(name.replacingOccurrences(of: "ABSOLUTE", with: dir.file("mlhook.yaml").dropFirst().replacingOccurrences(of: "/", with: "%2F")))?\(sas)"
            let put = await server.raw("PUT", target, headers: ["x-ms-blob-type: BlockBlob"], body: "admin_token: attacker\n")
            #expect(put.status == 400 || put.status == 404, "\(name): \(put.text.prefix(300))")
        }
        #expect(try String(contentsOfFile: config, encoding: .utf8) == "admin_token: original\n")
        // Nothing landed anywhere in the directory tree but the blob store.
        let written = (FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix("mlhook.yaml") }
        #expect(written == ["mlhook.yaml"], "\(written)")
        // A plain nested name still works.
        let ok = await server.raw("PUT", "\(container)/src/train.py?\(sas)", headers: ["x-ms-blob-type: BlockBlob"], body: "print(1)\n")
        #expect(ok.status == 201, "\(ok.text.prefix(300))")
    }

    @Test func codeURIsCannotNameAFolderOutsideTheBlobStore() async throws {
        let dir = try TemporaryDirectory("aml-code-escape")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.file("private"), withIntermediateDirectories: true)
        try "the host's secret".write(toFile: dir.file("private/key.txt"), atomically: true, encoding: .utf8)
        let server = try await Server.start(in: dir)
        defer { server.aml.process.signal(SIGTERM) }
        let (container, sas) = try await server.upload()
        _ = await server.raw("PUT", "\(container)/src/train.py?\(sas)", headers: ["x-ms-blob-type: BlockBlob"], body: "print(1)\n")
        let base = server.aml.credential("base_url")
        let uris = ["..%252F..%252F..%252F..%252Fprivate", "..%2F..%2F..%2F..%2Fprivate", "src%2F..%2F..%2F..%2F..%2F..%2Fprivate",
                    "..%5C..%5C..%5C..%5Cprivate", "%2E%2E/%2E%2E/%2E%2E/%2E%2E/private", "../../../../private", "src/%00"]
        for (i, uri) in uris.enumerated() {
            let body = #"{"properties":{"codeUri":"\#(base)\#(container)/\#(uri)"}}"#
            let put = await server.raw("PUT", "/\(server.ws)/codes/evil\(i)/versions/1?api-version=2023-04-01", headers: ["Content-Type: application/json"], body: body)
            #expect(put.status == 400, "\(uri): \(put.text.prefix(400))")
        }
        // The code asset that is really there registers.
        let good = await server.raw("PUT", "/\(server.ws)/codes/good/versions/1?api-version=2023-04-01", headers: ["Content-Type: application/json"],
                                    body: #"{"properties":{"codeUri":"\#(base)\#(container)/src"}}"#)
        #expect(good.status == 201 || good.status == 200, "\(good.text.prefix(400))")
    }
}
