import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import Signing
import TestSupport
import Testing

/// A whole flow through real processes with JSON logs, then the operator's views: the CLI through the admin
/// API, /metrics, and every log line searched for every secret and token that was used.
@Suite struct OperationsEndToEndTests {
    @Test func jsonLogsCarryIdsAndNoSecretsAndTheCLIWorksThroughTheAdminAPI() async throws {
        let dir = try TemporaryDirectory("mlhook-ops")
        defer { dir.remove() }
        // The training script prints its whole environment: the service's secrets must not be in it.
        let sha = try await ProviderEndToEndTests().makeRepo(dir.file("repo"), script: "import os\nprint(sorted(os.environ.items()))\n")
        try FileManager.default.createDirectory(atPath: dir.file("srv"), withIntermediateDirectories: true)
        _ = try await PushToRunTests().git(["clone", "--bare", "-q", dir.file("repo"), dir.file("srv/demo.git")], in: dir.path)
        _ = try await PushToRunTests().git(["config", "uploadpack.allowAnySHA1InWant", "true"], in: dir.file("srv/demo.git"))
        let secrets = ["GH_SECRET": "gh-ops-\(UUID().uuidString)", "CALLBACK_SECRET": "whsec_" + ByteEncoding.base64(Array(repeating: 11, count: 32)),
                       "MLHOOK_ADMIN_TOKEN": "admin-ops-\(UUID().uuidString)", "GIT_TOKEN": "ghp_ops\(UUID().uuidString.prefix(12))"]
        let gitServer = GitHTTPServer(root: dir.file("srv"), user: "x-access-token", token: secrets["GIT_TOKEN"]!)
        let gitApp = Application(router: gitServer.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        let receiver = Receiver(failFirst: 1)
        let receiverApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await gitApp.test(.live) { gc in
            try await receiverApp.test(.live) { rc in
                try Data(try Fixtures.githubPush(commit: sha, cloneURL: "http://127.0.0.1:\(gc.port!)/demo.git"))
                    .write(to: URL(fileURLWithPath: dir.file("push.json")))
                try """
                    server: { listen: "127.0.0.1:0" }
                    store: { path: "\(dir.file("mlhook.db"))" }
                    log: { format: json }
                    admin: { token: { env: MLHOOK_ADMIN_TOKEN } }
                    azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
                    callbacks: { retry_schedule_seconds: [1, 1] }
                    sources:
                      - { name: github, type: github, secrets: [ { env: GH_SECRET } ], forge_url: "http://127.0.0.1:\(gc.port!)" }
                    rules:
                      - name: train
                        when: { source: github, kind: push, branches: [main] }
                        actions: [ { start_run: { experiment: ops, dir: train, script: train.py, compute: cpu-cluster, token: { env: GIT_TOKEN } } } ]
                        callback: [ { url: { url: "http://127.0.0.1:\(rc.port!)/cb", secret: { env: CALLBACK_SECRET } } } ]
                    """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
                let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: secrets, directory: dir.path)
                defer { server.signal(SIGTERM) }
                let base = "http://127.0.0.1:\(server.port)"
                func cli(_ args: [String], env: [String: String] = secrets) async throws -> (status: Int32, output: String) {
                    try await runMLHook(args, environment: env, directory: dir.path)
                }
                let sent = try await cli(["send", "github", "push", "--payload", dir.file("push.json"), "--config", dir.file("mlhook.yaml"),
                                          "--to", "\(base)/hooks/github", "--delivery", "ops-delivery-1", "--wait"])
                #expect(sent.status == 0 && sent.output.contains(": delivered"), "\(sent.output)\n\(server.log.suffix(2000))")

                // The operator's views, through the admin API (no --config: nothing read from the store file).
                let events = try await cli(["events", "ls", "--server", base])
                #expect(events.status == 0 && events.output.contains("\tops-delivery-1\tplanned\t"), "\(events.output)")
                let jobs = try await cli(["jobs", "ls", "--server", base, "--state", "succeeded"])
                #expect(jobs.output.contains("\tsucceeded\ttrain#1\tstart_run\t"), "\(jobs.output)")
                let jobID = String(jobs.output.split(separator: "\t").first ?? "")
                let shown = try await cli(["jobs", "show", jobID, "--server", base])
                #expect(shown.output.contains("attempt 1:") && shown.output.contains("\"status\":\"Completed\""), "\(shown.output)")
                let callbacks = try await cli(["callbacks", "ls", "--server", base, "--state", "delivered"])
                #expect(callbacks.output.contains("\tdelivered\t2\t200\t"), "\(callbacks.output)")
                var noToken = secrets
                noToken["MLHOOK_ADMIN_TOKEN"] = "wrong-token"
                let refused = try await cli(["jobs", "ls", "--server", base], env: noToken)
                #expect(refused.status != 0 && refused.output.contains("401"), "\(refused.output)")

                // Metrics over HTTP.
                let metrics = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(base)/metrics"), timeout: .seconds(10))
                let text = String(buffer: try await metrics.body.collect(upTo: 1 << 20))
                #expect(text.contains(#"mlhook_events_received_total{source="github",kind="push",outcome="stored"} 1"#))
                #expect(text.contains(#"mlhook_runs_finished_total{status="Completed"} 1"#))
                #expect(text.contains(#"mlhook_callbacks_total{kind="url",outcome="failed"} 1"#) && text.contains(#"mlhook_callbacks_total{kind="url",outcome="delivered"} 1"#))
                #expect(text.contains(#"mlhook_jobs_finished_total{action="start_run",state="succeeded"} 1"#))

                // Logs: one JSON object per line; lines about the event and its job name them; no secret anywhere.
                server.signal(SIGTERM)
                _ = try await server.waitForExit()
                let lines = server.log.split(separator: "\n").map(String.init)
                let objects = lines.compactMap { JSONValue(json: Array($0.utf8)) }
                #expect(objects.count == lines.count && lines.count > 10, "every line is JSON: \(lines.filter { JSONValue(json: Array($0.utf8)) == nil })")
                func line(_ msg: String) -> JSONValue? { objects.first { $0["msg"]?.string == msg } }
                for msg in ["hook stored", "event planned: 1 action(s)"] {
                    #expect(line(msg)?["event_id"]?.string?.hasPrefix("evt_") == true && line(msg)?["delivery_id"]?.string == "ops-delivery-1", "\(msg)")
                }
                for msg in ["run started", "run Completed", "callback will be retried: the receiver answered 500", "callback delivered"] {
                    let l = line(msg)
                    #expect(l?["job_id"]?.string == jobID && l?["delivery_id"]?.string == "ops-delivery-1" && l?["event_id"] != nil, "\(msg): \(l.map { $0.text } ?? "missing")")
                }
                let everything = server.log + sent.output + events.output + jobs.output + shown.output + callbacks.output + refused.output
                for (name, value) in secrets {
                    #expect(!everything.contains(value), "\(name) leaked into the logs or the CLI's output")
                }
                var runLogs = ""
                if let files = FileManager.default.enumerator(atPath: dir.file("aml/runs")) {
                    for case let f as String in files where f.hasSuffix(".txt") { runLogs += (try? String(contentsOfFile: dir.file("aml/runs/\(f)"), encoding: .utf8)) ?? "" }
                }
                #expect(runLogs.contains("AZUREML_RUN_ID"), "the run printed its environment")
                for (name, value) in secrets { #expect(!runLogs.contains(value), "the training script could read \(name)") }
                let amlSecret = JSONValue(json: [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.file("aml/credentials.json")))))?["client_secret"]?.string ?? "?"
                #expect(!everything.contains(amlSecret), "the Azure client secret")
                let bearer = everything.split(separator: "\n").filter { $0.replacingOccurrences(of: "Bearer <admin token>", with: "").contains("Bearer ") || $0.lowercased().contains("authorization: basic") }
                #expect(bearer.isEmpty, "no bearer or basic credentials: \(bearer)")
            }
        }
    }
}
