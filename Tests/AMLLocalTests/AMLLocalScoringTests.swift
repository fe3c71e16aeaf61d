import AMLLocal
import Foundation
import HTTPTypes
import MLHookCore
import TestSupport
import Testing

/// A registered model deployed locally answers POST {"data": [...]} by running score.py's run() in python3.
@Suite struct AMLLocalScoringTests {
    @Test func aDeployedModelScoresWithKeyAuth() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        let modelDir = h.dir.file("model")
        try FileManager.default.createDirectory(atPath: modelDir, withIntermediateDirectories: true)
        try "{\"weights\": [2, 3]}".write(toFile: modelDir + "/model.json", atomically: true, encoding: .utf8)
        try """
            import json, os
            weights = None
            def init():
                global weights
                weights = json.load(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")))["weights"]
            def run(raw):
                rows = json.loads(raw)["data"]
                return {"predictions": [sum(w * x for w, x in zip(weights, row)) for row in rows]}
            """.write(toFile: modelDir + "/score.py", atomically: true, encoding: .utf8)
        try await h.live { api in
            let token = try await api.accessToken()
            let mms = "/modelmanagement/v1.0/\(h.ws)"
            _ = try await api.request(.post, "\(mms)/models", token: token, headers: [("Content-Type", "application/json")],
                                      body: Array("{\"name\":\"linear\",\"url\":\"file://\(modelDir)\"}".utf8))
            let deploy = try await api.request(.put, "\(mms)/services/linear-svc", token: token, headers: [("Content-Type", "application/json")],
                                               body: Array(#"{"modelId":"linear:1"}"#.utf8))
            #expect(deploy.status == .ok && deploy.json["state"]?.string == "Healthy")
            #expect(!deploy.text.contains("_primaryKey"), "keys are only given by listkeys")
            let scoringURI = try #require(deploy.json["scoringUri"]?.string)
            let path = scoringURI.replacingOccurrences(of: "http://127.0.0.1:\(api.client.port!)", with: "")
            let keys = try await api.request(.post, "\(mms)/services/linear-svc/listkeys", token: token).json
            let key = try #require(keys["primaryKey"]?.string)
            let scored = try await api.request(.post, path, token: key, headers: [("Content-Type", "application/json")],
                                               body: Array(#"{"data": [[1, 1], [2, 0]]}"#.utf8))
            #expect(scored.status == .ok && scored.json["predictions"] == [5, 4], "\(scored.text)")
            let secondary = try await api.request(.post, path, token: keys["secondaryKey"]?.string, headers: [("Content-Type", "application/json")],
                                                  body: Array(#"{"data": [[0, 1]]}"#.utf8))
            #expect(secondary.json["predictions"] == [3])
            #expect(try await api.request(.post, path, token: "wrong", body: Array(#"{"data":[]}"#.utf8)).status == .unauthorized)
            #expect(try await api.request(.post, path, token: nil, body: Array(#"{"data":[]}"#.utf8)).status == .unauthorized)
            let broken = try await api.request(.post, path, token: key, body: Array(#"{"data": "not rows"}"#.utf8))
            #expect(broken.status == .internalServerError && broken.text.contains("the entry script failed"))
            // A model without a local directory cannot be deployed locally, and says why.
            _ = try await api.request(.post, "\(mms)/models", token: token, headers: [("Content-Type", "application/json")],
                                      body: Array(#"{"name":"remote","url":"aml://artifact/x"}"#.utf8))
            let refused = try await api.request(.put, "\(mms)/services/remote-svc", token: token, body: Array(#"{"modelId":"remote:1"}"#.utf8))
            #expect(refused.status == .badRequest && refused.text.contains("file://"))
            #expect(try await api.request(.delete, "\(mms)/services/linear-svc", token: token).status == .ok)
            #expect(try await api.request(.post, path, token: key, body: Array(#"{"data":[]}"#.utf8)).status == .notFound)
        }
    }

    @Test func principalsFromAConfigFileCanGetTokens() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        let parsed = try AMLLocalFileConfig.parse(yaml: """
            principals:
              - { tenant_id: "t-1", client_id: "ci-app", client_secret: { env: CI_APP_SECRET } }
            """, file: "aml.yaml")
        #expect(parsed.principals == [.init(tenantID: "t-1", clientID: "ci-app", secret: .env("CI_APP_SECRET"))])
        #expect(throws: ConfigError.self) { try AMLLocalFileConfig.parse(yaml: "principals: [ { tenant_id: t, client_id: c } ]\nextra: 1\n", file: "f") }
        try h.aml.addPrincipal(tenantID: "t-1", clientID: "ci-app", secret: "s3cret")
        try await h.live { api in
            let form = "grant_type=client_credentials&client_id=ci-app&client_secret=s3cret&resource=https%3A%2F%2Fmanagement.azure.com%2F"
            let ok = try await api.request(.post, "/t-1/oauth2/token", token: nil, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8))
            #expect(ok.status == .ok && ok.json["access_token"]?.string != nil)
            let otherTenant = try await api.request(.post, "/t-2/oauth2/token", token: nil, body: Array(form.utf8))
            #expect(otherTenant.status == .unauthorized)
        }
    }
}
