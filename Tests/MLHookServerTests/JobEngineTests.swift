import AzureML
import Foundation
import MLHookCore
import MLHookServer
import Store
import TestSupport
import Testing

/// The job engine against a scripted Azure ML (`FakeAzureMLClient`): retries, typed parameters, the
/// register-once rule and run watching, without aml-local.
@Suite struct JobEngineTests {
    static let rules = """
        sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
        rules:
          - name: ops
            when: { kind: push }
            actions:
              - scale_compute: { name: gpu, max_nodes: 4 }
            callback:
              - url: { url: "http://127.0.0.1:9/callback", secret: { env: GH } }
        """

    /// Stores one planned event with one job of `action` and `parameters` (JSON).
    func enqueue(_ h: IngressHarness, action: String, parameters: String, maxAttempts: Int = 3) async throws -> String {
        let e = InboundEvent(id: EventID.make(), source: "github", kind: "push", deliveryID: UUID().uuidString, headers: [:],
                             body: Array("{}".utf8), contentType: "application/json", receivedAt: Date())
        let job = NewJob(idempotencyKey: "ops#0@" + e.id, eventID: e.id, rule: "ops", actionIndex: 0, action: action,
                         parameters: parameters, maxAttempts: maxAttempts)
        _ = try await h.store.append(e, plan: PlanVerdict(id: e.id, state: .planned, plan: "[]", explanation: "ops: matched"), jobs: [job])
        return job.id
    }

    func runner(_ h: IngressHarness, _ fake: FakeAzureMLClient) -> JobRunner {
        JobRunner(store: h.store, live: h.runtime.live, client: { fake }, logger: h.logs.logger(), baseBackoff: 0, maxBackoff: 0)
    }

    @Test func aThrottledActionIsRetriedThenSucceedsWithItsTypedResult() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try h.install(Self.rules)
        let fake = FakeAzureMLClient()
        fake.script("scaleCompute", [.failure(AzureMLError(code: .throttled, status: 429, message: "slow down"))])
        let id = try await enqueue(h, action: "scale_compute", parameters: #"{"name":"gpu","max_nodes":4,"min_nodes":1}"#)
        let engine = runner(h, fake)
        while try await engine.runOne() {}
        let job = try #require(try await h.store.job(id: id))
        #expect(job.state == .succeeded && job.attempts == 2)
        #expect(JSONValue(json: Array((job.result ?? "").utf8))?["maxNodeCount"]?.int == 4)
        #expect(fake.calls("scaleCompute").map(\.arguments) == [["gpu", "1", "4", "-"], ["gpu", "1", "4", "-"]])
        #expect(try await h.store.attempts(jobID: id).map(\.outcome) == [.queued, .succeeded])
        let callbacks = try await h.store.callbacks(CallbackQuery(jobID: id))
        #expect(callbacks.count == 1 && callbacks[0].body.contains(#""status":"succeeded""#))
    }

    @Test func aMissingParameterFailsTheJobAtOnceNamingIt() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try h.install(Self.rules)
        let fake = FakeAzureMLClient()
        let id = try await enqueue(h, action: "delete_model", parameters: #"{"name":"x"}"#)
        let bad = try await enqueue(h, action: "scale_compute", parameters: "not json")
        let engine = runner(h, fake)
        while try await engine.runOne() {}
        let missing = try #require(try await h.store.job(id: id))
        #expect(missing.state == .failed && missing.attempts == 1 && missing.lastError == "parameter id is missing")
        let unreadable = try #require(try await h.store.job(id: bad))
        #expect(unreadable.state == .failed && unreadable.lastError?.contains("parameters cannot be read") == true)
        #expect(fake.calls.isEmpty, "nothing reached Azure ML")
    }

    @Test func aRegisterWhoseAnswerWasLostFindsItsVersionOnRetry() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try h.install(Self.rules)
        let fake = FakeAzureMLClient()
        // The POST registers the model, then the answer is lost.
        fake.script("registerModel", [.failure(AzureMLError(code: .server, status: 503, message: "answer lost"))])
        let id = try await enqueue(h, action: "register_model", parameters: #"{"name":"churn","url":"aml://artifact/x"}"#)
        let engine = runner(h, fake)
        while try await engine.runOne() {}
        let job = try #require(try await h.store.job(id: id))
        #expect(job.state == .succeeded && job.result == #"{"id":"churn:1"}"#)
        #expect(fake.calls("registerModel").count == 1, "the retry found version 1 by its mlhook_job tag")
        #expect(try await fake.models(name: "churn").count == 1)
    }

    @Test func v2ActionsCallTheV2OperationsAndALostV2RegisterIsFoundAgain() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try h.install(Self.rules.replacingOccurrences(of: "rules:", with: "azureml: { api: v2 }\nrules:"))
        let fake = FakeAzureMLClient()
        fake.script("registerModelV2", [.failure(AzureMLError(code: .server, status: 503, message: "answer lost"))])
        let archive = try await enqueue(h, action: "archive_model", parameters: #"{"id":"churn:2"}"#)
        let delete = try await enqueue(h, action: "delete_model", parameters: #"{"id":"churn:3"}"#)
        let invoke = try await enqueue(h, action: "invoke_endpoint", parameters: #"{"endpoint":"ep","data":"{\"data\":[1]}","deployment":"blue"}"#)
        let register = try await enqueue(h, action: "register_model", parameters: #"{"name":"churn","from_job":"mlhook_job_x","path":"model"}"#)
        let engine = runner(h, fake)
        while try await engine.runOne() {}
        for id in [archive, delete, invoke, register] {
            let job = try #require(try await h.store.job(id: id))
            #expect(job.state == .succeeded, "\(job.action): \(job.lastError ?? "")")
        }
        #expect(fake.calls("archiveModelVersion").map(\.arguments) == [["churn", "2", "true"]])
        #expect(fake.calls("deleteModelVersion").map(\.arguments) == [["churn", "3"]] && fake.calls("deleteModel").isEmpty, "azureml.api: v2")
        #expect(fake.calls("invokeEndpoint").map(\.arguments) == [["ep", #"{"data":[1]}"#, "blue"]])
        #expect(try await h.store.job(id: invoke)?.result == #"{"result":[1]}"#)
        #expect(fake.calls("registerModelV2").count == 1, "the retry found the version by its mlhook_job tag")
        let registered = try #require(fake.calls("registerModelV2").first?.arguments.last)
        #expect(registered.contains("azureml://jobs/mlhook_job_x/outputs/artifacts/paths/model/"))
        #expect(try await h.store.job(id: register)?.result == #"{"id":"churn:1"}"#)
    }

    @Test func everyActionTypeHasAnActionAndWorkersClaimThemAll() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try h.install(Self.rules)
        let fake = FakeAzureMLClient()
        // One job of each type; each reaches its action (start_run fails for want of a git cache, which shows it ran).
        var ids: [ActionType: String] = [:]
        for type in ActionType.allCases { ids[type] = try await enqueue(h, action: type.rawValue, parameters: "{}", maxAttempts: 1) }
        let engine = runner(h, fake)
        while try await engine.runOne() {}
        for (type, id) in ids {
            let job = try #require(try await h.store.job(id: id))
            #expect(job.state == .failed, "\(type.rawValue): \(job.state)")
            #expect(job.lastError?.contains("unknown action") == false, "\(type.rawValue): \(job.lastError ?? "")")
        }
    }
}

/// `azureml.cloud` becomes client settings in one place, for `serve` and `mlhook aml --config` alike.
@Suite struct AzureMLSettingsFromConfigTests {
    @Test func everyCloudKeyReachesTheSettingsIncludingTheDataPlaneURL() throws {
        let yaml = """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            azureml:
              mode: cloud
              cloud:
                tenant_id: t
                client_id: c
                client_secret: { env: AZ_SECRET }
                subscription_id: s
                resource_group: g
                workspace: w
                authority_url: "https://login.example"
                arm_url: "https://arm.example"
                data_plane_url: "https://westeurope.api.example"
                api_version: "2023-10-01"
                v2_api_version: "2026-03-01"
            """
        let config = try MLHookConfig.parse(yaml: yaml, file: "az.yaml").config
        let settings = try #require(try AzureMLSettings.cloud(config.azureml.cloud, environment: ["AZ_SECRET": "shh"]))
        #expect(settings.dataPlaneOverride == "https://westeurope.api.example")
        #expect(settings.armAPIVersion == "2023-10-01" && settings.v2APIVersion == "2026-03-01")
        #expect(settings.authorityURL == "https://login.example" && settings.armURL == "https://arm.example")
        #expect(settings.credential == .servicePrincipal(tenantID: "t", clientID: "c", secret: "shh", v2: false))
        #expect(settings.workspacePath.hasSuffix("/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w"))
        #expect(throws: ConfigError.self) { try AzureMLSettings.cloud(config.azureml.cloud, environment: [:]) }
    }
}
