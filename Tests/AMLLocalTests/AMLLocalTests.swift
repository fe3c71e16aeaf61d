import AMLLocal
import Foundation
import HTTPTypes
import MLHookCore
import TestSupport
import Testing

@Suite struct AMLLocalAuthTests {
    @Test func tokensV1AsStringsV2AsIntegersAndBadSecretIsInvalidClient() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let v1 = try await api.token()
            #expect(v1.status == .ok && v1.json["token_type"]?.string == "Bearer")
            #expect(v1.json["expires_in"]?.string != nil && v1.json["expires_on"]?.string != nil, "v1 numbers are strings")
            let v2 = try await api.token(v2: true)
            #expect(v2.json["expires_in"]?.int != nil && v2.json["access_token"]?.string != nil, "v2 numbers are integers")
            let bad = try await api.token(secret: "wrong")
            #expect(bad.status == .unauthorized && bad.json["error"]?.string == "invalid_client")
            #expect(bad.json["error_description"]?.string?.hasPrefix("AADSTS7000215") == true)
        }
    }

    @Test func everyCallButDiscoveryNeedsAValidTokenAndARMNeedsAnApiVersion() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let none = try await api.request(.get, "/subscriptions/\(h.c.subscriptionID)/resourceGroups?api-version=2019-11-01", token: nil)
            #expect(none.status == .unauthorized && none.json.value(at: "error.code")?.string == "AuthenticationFailed")
            #expect(none.json.value(at: "error.message")?.string == "Authentication failed. The 'Authorization' header is missing.")
            let forged = try await api.request(.get, "/history/v1.0/\(h.ws)/experiments", token: "aml.9999999999.x.00")
            #expect(forged.status == .unauthorized)
            let token = try await api.accessToken()
            let noVersion = try await api.request(.get, "/subscriptions/\(h.c.subscriptionID)/resourceGroups", token: token)
            #expect(noVersion.status == .badRequest && noVersion.json.value(at: "error.code")?.string == "MissingApiVersionParameter")
            let groups = try await api.request(.get, "/subscriptions/\(h.c.subscriptionID)/resourceGroups?api-version=2019-11-01", token: token)
            #expect(groups.json.value(at: "value.0.name")?.string == "mlhook-local")
            // Data plane: with or without api-version.
            #expect(try await api.request(.get, "/history/v1.0/\(h.ws)/experiments", token: token).status == .ok)
            #expect(try await api.request(.get, "/history/v1.0/\(h.ws)/experiments?api-version=2019-11-01", token: token).status == .ok)
            let discovery = try await api.request(.get, "/discovery", token: nil)
            for key in ["api", "history", "modelmanagement", "experimentation", "hyperdrive", "studio"] {
                #expect(discovery.json[key]?.string?.hasPrefix("http://127.0.0.1:") == true, "discovery key \(key)")
            }
        }
    }
}

extension AMLLocalAuthTests {
    @Test func anExpiredTokenIsRefused() async throws {
        // The server's clock moves on by hand: no waiting for the token to age.
        let clock = ManualClock(Date())
        let h = try AMLHarness(tokenLifetime: 60, now: clock.read)
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            #expect(try await api.request(.get, "/history/v1.0/\(h.ws)/experiments", token: token).status == .ok)
            clock.advance(59)
            #expect(try await api.request(.get, "/history/v1.0/\(h.ws)/experiments", token: token).status == .ok)
            clock.advance(2)
            let expired = try await api.request(.get, "/history/v1.0/\(h.ws)/experiments", token: token)
            #expect(expired.status == .unauthorized && expired.text.contains("expired"))
            #expect(expired.json.value(at: "error.code")?.string == "AuthenticationFailed")
        }
    }
}

@Suite struct AMLLocalResourceTests {
    @Test func workspaceAndComputeLifecyclesFollowTheLongRunningOperationRules() async throws {
        // Provisioning takes 5 s of the server's clock, which moves only by hand: the first poll sees the operation
        // in progress however slowly the machine answers, and it is done once the clock has passed its time.
        let clock = ManualClock(Date())
        let h = try AMLHarness(provisioningDelay: 5, now: clock.read)
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let rg = "/subscriptions/\(h.c.subscriptionID)/resourceGroups/\(h.c.resourceGroup)/providers/Microsoft.MachineLearningServices/workspaces"
            // The article's workspace PUT (with a trailing slash variant for the list).
            let put = try await api.request(.put, "\(rg)/second?api-version=2019-11-01", token: token, headers: [("Content-Type", "application/json")],
                                            body: Array(#"{"location":"eastus","properties":{"friendlyName":"Second","description":"d"},"identity":{"type":"systemAssigned"}}"#.utf8))
            #expect(put.status == .accepted && put.headers[HTTPField.Name("Location")!] != nil)
            #expect(put.json.value(at: "properties.provisioningState")?.string == "Creating")
            let location = try #require(put.headers[HTTPField.Name("Location")!]).replacingOccurrences(of: "http://127.0.0.1:\(api.client.port!)", with: "")
            let firstPoll = try await api.request(.get, location, token: token)
            #expect(firstPoll.status == .accepted, "\(firstPoll.status) \(firstPoll.text) for \(location)")
            clock.advance(4)
            #expect(try await api.request(.get, location, token: token).status == .accepted, "not done a second early")
            clock.advance(1.5)
            #expect(try await api.request(.get, location, token: token).status == .ok)
            let list = try await api.request(.get, "\(rg)/?api-version=2019-11-01", token: token)
            #expect(list.json["value"]?.array?.count == 2)
            #expect(try await api.request(.get, "\(rg)/second?api-version=2019-11-01", token: token).json.value(at: "properties.provisioningState")?.string == "Succeeded")

            // Compute: the article's body, with userAccountCredentials at the top level.
            let computes = "\(rg)/\(h.c.workspace)/computes"
            let create = try await api.request(.put, "\(computes)/gpu-box?api-version=2019-11-01", token: token, headers: [("Content-Type", "application/json")],
                body: Array(#"{"location":"eastus","properties":{"computeType":"AmlCompute","properties":{"vmSize":"Standard_D1","vmPriority":"Dedicated","scaleSettings":{"maxNodeCount":1,"minNodeCount":0,"nodeIdleTimeBeforeScaleDown":"PT30M"}}},"userAccountCredentials":{"adminUserName":"admin","adminUserPassword":"hunter2"}}"#.utf8))
            #expect(create.status == .created && create.headers[HTTPField.Name("Azure-AsyncOperation")!] != nil)
            #expect(!create.text.contains("hunter2"), "credentials are never returned")
            func state() async throws -> String? {
                try await api.request(.get, "\(computes)/gpu-box?api-version=2019-11-01", token: token).json.value(at: "properties.provisioningState")?.string
            }
            #expect(try await state() == "Creating")
            clock.advance(6)
            #expect(try await state() == "Succeeded")
            let scale = try await api.request(.patch, "\(computes)/gpu-box?api-version=2019-11-01", token: token, headers: [("Content-Type", "application/json")],
                                              body: Array(#"{"properties":{"scaleSettings":{"maxNodeCount":4,"minNodeCount":0}}}"#.utf8))
            #expect(scale.status == .ok && scale.json.value(at: "properties.provisioningState")?.string == "Updating")
            #expect(try await state() == "Updating")
            clock.advance(6)
            #expect(try await state() == "Succeeded")
            let got = try await api.request(.get, "\(computes)/gpu-box?api-version=2019-11-01", token: token).json
            #expect(got.value(at: "properties.provisioningState")?.string == "Succeeded")
            #expect(got.value(at: "properties.properties.scaleSettings.maxNodeCount")?.int == 4)
            let noAction = try await api.request(.delete, "\(computes)/gpu-box?api-version=2019-11-01", token: token)
            #expect(noAction.status == .badRequest && noAction.text.contains("underlyingResourceAction"))
            #expect(try await api.request(.delete, "\(computes)/gpu-box?api-version=2019-11-01&underlyingResourceAction=Delete", token: token).status == .accepted)
            #expect(try await api.request(.get, "\(computes)/gpu-box?api-version=2019-11-01", token: token).status == .notFound)
        }
    }

    @Test func modelsHaveVersionsPerNameAndDeleteMeansGone() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let models = "/modelmanagement/v1.0/\(h.ws)/models"
            for _ in 0..<2 {
                let r = try await api.request(.post, models, token: token, headers: [("Content-Type", "application/json")],
                                              body: Array(#"{"name":"churn","url":"aml://artifact/x/model.pkl","mimeType":"application/octet-stream","kvTags":{"commit":"9f1c"}}"#.utf8))
                #expect(r.status == .ok)
            }
            // msrest sends ids percent-encoded.
            let one = try await api.request(.get, "\(models)/churn%3A1", token: token)
            #expect(one.json["version"]?.int == 1 && one.json["id"]?.string == "churn:1")
            let page = try await api.request(.get, "\(models)?name=churn&count=1", token: token).json
            #expect(page["value"]?.array?.count == 1 && page["nextLink"]?.string?.contains("$skipToken=1") == true)
            let patched = try await api.request(.patch, "\(models)/churn:2", token: token, headers: [("Content-Type", "application/json-patch+json")],
                                                body: Array(#"[{"op":"replace","path":"/description","value":"best"}]"#.utf8))
            #expect(patched.json["description"]?.string == "best")
            #expect(try await api.request(.delete, "\(models)/churn%3A1", token: token).status == .ok)
            #expect(try await api.request(.delete, "\(models)/churn%3A1", token: token).status == .noContent)
            let missing = try await api.request(.get, "\(models)/churn:1", token: token)
            #expect(missing.status == .notFound && missing.json["code"]?.string == "NotFound" && missing.json["statusCode"]?.int == 404)
        }
    }

    /// A script that counts its starts in outputs/ (which a restart keeps) and runs long only the first time.
    static let checkpointing = """
        import os, time
        os.makedirs('outputs', exist_ok=True)
        n = int(open('outputs/starts').read()) + 1 if os.path.exists('outputs/starts') else 1
        open('outputs/starts', 'w').write(str(n))
        print('start', n, flush=True)
        time.sleep(30 if n == 1 else 1)
        print('done')

        """

    /// Where the checkpointing script counts its starts (the one run's `outputs/starts`), or "" before it exists.
    static func startsFile(_ dir: TemporaryDirectory) -> String {
        let runs = (try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/runs")) ?? []
        return runs.map { dir.path + "/runs/\($0)/project/outputs/starts" }.first { FileManager.default.fileExists(atPath: $0) } ?? ""
    }

    /// A restart keeps identity and models, and a run the stop cut short starts again in its folder (as Azure ML
    /// restarts a job whose node went away), up to three times; after that it fails, saying why.
    @Test func stateSurvivesARestartAndInterruptedRunsStartAgain() async throws {
        let dir = try TemporaryDirectory("aml-restart")
        defer { dir.remove() }
        let first = try AMLHarness(dir: dir)
        let (again, stuck) = ("interrupted-run", "stuck-run")
        try await first.live { api in
            let token = try await api.accessToken()
            _ = try await api.request(.post, "/modelmanagement/v1.0/\(first.ws)/models", token: token, headers: [("Content-Type", "application/json")],
                                      body: Array(#"{"name":"kept","url":"https://x/m.pkl"}"#.utf8))
            _ = try await api.startRun(token, files: ["work.py": Self.checkpointing],
                                       definition: #"{"configuration":{"script":"work.py","target":"cpu-cluster"}}"#, runID: again)
            _ = try await api.waitFor(token, run: again, ["Running"])
            // Stopped only once the script has counted its first start (Running is set before the sandbox is up).
            #expect(try await eventually(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: Self.startsFile(dir)) })
        }
        first.aml.shutdown()
        let second = try AMLHarness(dir: dir)
        #expect(second.c == first.c)
        try await second.live { api in
            let token = try await api.accessToken()
            #expect(try await api.request(.get, "/modelmanagement/v1.0/\(second.ws)/models/kept:1", token: token).status == .ok)
            let run = try await api.waitFor(token, run: again, ["Completed", "Failed", "Canceled"])
            #expect(run["status"]?.string == "Completed", "\(run)")
            let details = try await api.request(.get, "/history/v1.0/\(second.ws)/experiments/demo/runs/\(again)/details", token: token).json
            let url = try #require(URLComponents(string: details.value(at: "logFiles")?.object["azureml-logs/70_driver_log.txt"]?.string ?? ""))
            let log = try await api.request(.get, url.percentEncodedPath + "?" + (url.percentEncodedQuery ?? ""), token: nil).text
            #expect(log.contains("it starts again (restart 1 of 3)") && log.hasSuffix("done\n"), "\(log)")
            _ = try await api.startRun(token, files: ["sleep.py": "import time\ntime.sleep(60)\n"],
                                       definition: #"{"configuration":{"script":"sleep.py","target":"cpu-cluster"}}"#, runID: stuck)
            _ = try await api.waitFor(token, run: stuck, ["Running"])
        }
        second.aml.shutdown()
        // Three more stops while it runs: started again each time, then failed.
        for n in 1...3 {
            let next = try AMLHarness(dir: dir)
            try await next.live { api in
                let token = try await api.accessToken()
                let run = try await api.waitFor(token, run: stuck, n < 3 ? ["Running"] : ["Running", "Failed"])
                if n == 3 {
                    #expect(run["status"]?.string == "Running", "restart 3 of 3 runs")
                }
            }
            next.aml.shutdown()
        }
        let last = try AMLHarness(dir: dir)
        try await last.live { api in
            let token = try await api.accessToken()
            let run = try await api.request(.get, "/history/v1.0/\(last.ws)/experiments/demo/runs/\(stuck)", token: token).json
            #expect(run["status"]?.string == "Failed" && run.value(at: "error.error.message")?.string?.contains("it was restarted 3 times already") == true,
                    "\(run)")
        }
    }
}

/// A data directory serves one aml-local at a time.
@Suite struct AMLLocalDataDirectoryTests {
    @Test func aSecondServerOnTheSameDirectoryIsRefusedUntilTheFirstStops() throws {
        let dir = try TemporaryDirectory("aml-lock")
        defer { dir.remove() }
        let first = try AMLHarness(dir: dir)
        let before = try String(contentsOfFile: dir.file(".lock"), encoding: .utf8)
        #expect(throws: (any Error).self) { _ = try AMLHarness(dir: dir) }
        do { _ = try AMLHarness(dir: dir) } catch {
            #expect("\(error)".contains("is in use by another aml-local (pid \(getpid()))"), "\(error)")
        }
        #expect(try String(contentsOfFile: dir.file(".lock"), encoding: .utf8) == before, "the refused one changed nothing")
        first.aml.shutdown()
        #expect(throws: Never.self) { _ = try AMLHarness(dir: dir) }
    }
}
