import AMLLocal
import AsyncHTTPClient
import AzureML
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
import NIOCore
import TestSupport
import Testing

/// mlhook's v2 client against aml-local over real sockets: a code asset uploaded once per content (blocks above the
/// block size), a command job to Completed and one cancelled, v2 model versions (register, list, archive, delete),
/// and a managed online endpoint scored with its key.
@Suite struct ClientV2AgainstAMLLocalTests {
    /// A raw ARM PUT with the seeded principal's token (for what the client does not do: creating endpoints).
    func put(_ url: String, _ body: String?, aml: AMLLocal) async throws -> JSONValue {
        let c = aml.credentials
        var tokenRequest = HTTPClientRequest(url: "\(aml.settings.baseURL)/\(c.tenantID)/oauth2/token")
        tokenRequest.method = .POST
        tokenRequest.body = .bytes(ByteBuffer(string: "grant_type=client_credentials&client_id=\(c.clientID)&client_secret=\(c.clientSecret)&resource=x"))
        let tokenBody = try await HTTPClient.shared.execute(tokenRequest, timeout: .seconds(10)).body.collect(upTo: 1 << 16)
        var request = HTTPClientRequest(url: url)
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(JSONValue(json: Array(tokenBody.readableBytesView))?["access_token"]?.string ?? "")")
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let reply = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return JSONValue(json: Array(try await reply.body.collect(upTo: 1 << 20).readableBytesView)) ?? .null
    }

    func waitForJob(_ api: HTTPAzureMLClient, _ name: String) async throws -> String {
        var status = ""
        for _ in 0..<300 {
            status = try await api.job(name: name).value(at: "properties.status")?.string ?? ""
            if ["Completed", "Failed", "Canceled"].contains(status) { return status }
            try await Task.sleep(for: .milliseconds(50))
        }
        return "still \(status) after 15 s"
    }

    @Test func codeJobsModelsAndAnEndpoint() async throws {
        try await ClientAgainstAMLLocalTests().withClient { api, aml, dir in
            // A 9-byte block size makes train.py go up as Put Block + Put Block List.
            let files = [CodeFile(path: "train.py", bytes: Array("import os\nos.makedirs('outputs/model', exist_ok=True)\nopen('outputs/model/w.txt', 'w').write('42')\nprint('ok')\n".utf8)),
                         CodeFile(path: "pkg/score.py", bytes: Array("import json, os\ndef init():\n    global w\n    w = open(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'w.txt')).read()\ndef run(raw):\n    return {'w': w, 'n': len(json.loads(raw)['data'])}\n".utf8))]
            let code = try await api.ensureCode(name: "c", files: files, blockSize: 9)
            #expect(try await api.ensureCode(name: "other-name", files: files, blockSize: 9) == code, "found by its hash under any name")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("aml/blobs/local")).count == 1, "uploaded once")
            let changed = try await api.ensureCode(name: "c", files: files + [CodeFile(path: "README", bytes: [1])], blockSize: 9)
            #expect(changed != code)

            let job: JSONValue = ["jobType": "Command", "command": "python train.py", "codeId": .string(code),
                                  "environmentId": "azureml:AzureML-sklearn-1.5@latest", "computeId": .string(api.v2ID("/computes/cpu-cluster"))]
            let submitted = try await api.submitJob(name: "v2_client_job", properties: job)
            #expect(submitted.value(at: "properties.status")?.string == "NotStarted")
            #expect(try await waitForJob(api, "v2_client_job") == "Completed")
            let details = try await api.jobDetails(name: "v2_client_job")
            let log = try await api.download(details["logFiles"]?.object["user_logs/std_log.txt"]?.string ?? "")
            #expect(String(decoding: log, as: UTF8.self).contains("ok"))

            let long = job.setting("command", "sleep 60")
            _ = try await api.submitJob(name: "v2_client_long", properties: long)
            try await api.cancelJob(name: "v2_client_long")
            let canceled = try await waitForJob(api, "v2_client_long")
            #expect(canceled == "Canceled")

            let uri = "azureml://jobs/v2_client_job/outputs/artifacts/paths/model/"
            let one = try await api.registerModelV2(name: "m2", properties: ["modelType": "custom_model", "modelUri": .string(uri), "tags": ["k": "v"]])
            let two = try await api.registerModelV2(name: "m2", properties: ["modelType": "custom_model", "modelUri": .string(uri)])
            #expect(one["name"]?.string == "1" && two["name"]?.string == "2")
            #expect(try await api.modelVersions(name: "m2", includeArchived: false).compactMap { $0["name"]?.string } == ["2", "1"], "newest first")
            let archived = try await api.archiveModelVersion(name: "m2", version: "1", archived: true)
            #expect(archived.value(at: "properties.isArchived") == true && archived.value(at: "properties.tags.k")?.string == "v", "tags kept")
            #expect(try await api.modelVersions(name: "m2", includeArchived: false).count == 1)
            try await api.deleteModelVersion(name: "m2", version: "2")
            try await api.deleteModelVersion(name: "m2", version: "2")  // already gone: done
            #expect(try await api.modelVersions(name: "m2", includeArchived: true).count == 1)
            #expect(try await api.modelVersions(name: "never", includeArchived: true).isEmpty)

            // An endpoint with one deployment of m2:1, scored through the client with the endpoint's key.
            let base = "\(api.settings.armURL)\(api.settings.workspacePath)/onlineEndpoints/ep1"
            _ = try await put(base + "?api-version=2025-12-01", #"{"location":"local","properties":{"authMode":"Key"}}"#, aml: aml)
            _ = try await put(base + "/deployments/blue?api-version=2025-12-01", """
                {"location":"local","properties":{"model":"azureml:m2:1","codeConfiguration":{"codeId":"\(code)","scoringScript":"pkg/score.py"},"environmentId":"azureml:e@latest"}}
                """, aml: aml)
            #expect(try await api.invokeEndpoint("ep1", body: ["data": [1, 2, 3]], deployment: nil) == ["w": "42", "n": 3])
            #expect(try await api.invokeEndpoint("ep1", body: ["data": []], deployment: "blue") == ["w": "42", "n": 0])
            await #expect(throws: AzureMLError.self) { _ = try await api.invokeEndpoint("ep1", body: ["data": []], deployment: "green") }
            await #expect(throws: AzureMLError.self) { _ = try await api.invokeEndpoint("nope", body: ["data": []], deployment: nil) }
        }
    }
}
