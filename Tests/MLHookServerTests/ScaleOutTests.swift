import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import Signing
import TestSupport
import Testing

/// `mlhook serve` replicas on one PostgreSQL database (the cluster scripts/test.sh starts, a database per test),
/// with a separate `mlhook aml-local` as the cloud, all real processes.
@Suite struct ScaleOutTests {
    /// The repository root (scripts/ lives there).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test func twoReplicasShareOneStoreAndRunACommitOnce() async throws {
        let dir = try TemporaryDirectory("mlhook-scaleout")
        defer { dir.remove() }
        let database = try await TestPostgres.createDatabase()
        defer { database.drop() }
        let aml = try await AMLLocalProcess.start(in: dir)
        defer { aml.process.signal(SIGTERM) }

        let (repo, commits) = try await trainingRepository(in: dir, scripts: ["print('trained on a replica')\n"])
        let sha = commits[0]
        try Data(try Fixtures.githubPush(commit: sha, cloneURL: "file://\(repo)")).write(to: URL(fileURLWithPath: dir.file("push.json")))

        let receiver = Receiver(failFirst: 0)
        let rApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await rApp.test(.live) { rc in
            let config = dir.file("mlhook.yaml")
            try """
                server: { listen: "127.0.0.1:0" }
                store:
                  postgres: { url: { env: DB_URL }, pool_size: 4, ingest_timeout_ms: 20000 }
                \(aml.cloudYAML(secretEnv: "AML_SECRET"))
                sources:
                  - { name: github, type: github, secrets: [ { env: GH_SECRET } ], git_schemes: [file] }
                rules:
                  - name: retrain
                    when: { source: github, kind: push, branches: [main] }
                    actions: [ { start_run: { experiment: scale-out, dir: train, script: train.py, compute: cpu-cluster } } ]
                    callback: [ { url: { url: "http://127.0.0.1:\(rc.port!)/cb", secret: { env: CB } } } ]
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let env = ["GH_SECRET": "scale-secret", "AML_SECRET": aml.credential("client_secret"), "DB_URL": database.url,
                       "CB": "whsec_" + ByteEncoding.base64(Array(repeating: 5, count: 32))]
            let a = try await ServerProcess(arguments: ["serve", "--config", config], environment: env, directory: dir.path)
            defer { a.signal(SIGTERM) }
            let b = try await ServerProcess(arguments: ["serve", "--config", config], environment: env, directory: dir.path)
            defer { b.signal(SIGTERM) }

            // The same delivery posted to both replicas at the same moment: one stores it, the other says duplicate.
            let sends = try await withThrowingTaskGroup(of: (Int32, String).self) { group in
                for port in [a.port, b.port] {
                    group.addTask {
                        let r = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", config,
                                                          "--delivery", "same-delivery", "--to", "http://127.0.0.1:\(port)/hooks/github"],
                                                         environment: env, directory: dir.path)
                        return (r.status, r.output)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(sends.allSatisfy { $0.0 == 0 }, "both answered 2xx: \(sends)")
            #expect(sends.filter { $0.1.contains("\"duplicate\":true") }.count == 1, "one of them is the duplicate: \(sends)")

            // One run at aml-local, one final callback, whichever replica took the job.
            #expect(try await eventually(timeout: .seconds(60)) { !receiver.accepted.isEmpty })
            let doc = try #require(JSONValue(json: receiver.accepted.first?.body ?? []))
            #expect(doc.value(at: "data.status")?.string == "succeeded" && doc.value(at: "data.provenance.commit")?.string == sha)
            try await Task.sleep(for: .seconds(2))
            #expect(receiver.attempts == 1, "one callback")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs")).count == 1, "exactly one run for the commit")

            // The CLI reads the shared store like the SQLite one.
            let events = try await runMLHook(["events", "ls", "--config", config], environment: env, directory: dir.path)
            #expect(events.status == 0 && events.output.split(separator: "\n").filter { $0.contains("same-delivery") }.count == 1, "\(events.output)")
            let jobs = try await runMLHook(["jobs", "ls", "--config", config], environment: env, directory: dir.path)
            #expect(jobs.status == 0 && jobs.output.contains("\tsucceeded\t"), "\(jobs.output)")
            for replica in [a, b] {
                #expect(try await Self.status("http://127.0.0.1:\(replica.port)/readyz") == 200)
            }
        }
    }

    @Test func theDatabaseGoingAwayForThirtySecondsTurnsReadinessRedAndIngestAnswers503UntilItReturns() async throws {
        let dir = try TemporaryDirectory("mlhook-dbdown")
        defer { dir.remove() }
        // A cluster of this test's own, which it stops and starts.
        try await Cluster.with { cluster in try await Self.databaseGoesAway(cluster, dir) }
    }

    static func databaseGoesAway(_ cluster: Cluster, _ dir: TemporaryDirectory) async throws {
        let config = dir.file("mlhook.yaml")
        try """
            server: { listen: "127.0.0.1:0" }
            store: { postgres: { url: { env: DB_URL } } }
            azureml: { mode: cloud, cloud: { tenant_id: t, client_id: c, client_secret: { env: GH_SECRET }, subscription_id: s, resource_group: g, workspace: w } }
            sources: [ { name: github, type: github, secrets: [ { env: GH_SECRET } ] } ]
            rules: [ { name: never, when: { kind: release }, actions: [ { scale_compute: { name: cpu-cluster, max_nodes: 1 } } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["GH_SECRET": "down-secret", "DB_URL": cluster.url]
        try Data(try Fixtures.githubPush(commit: String(repeating: "a", count: 40), cloneURL: "https://example.invalid/r.git"))
            .write(to: URL(fileURLWithPath: dir.file("push.json")))
        let server = try await ServerProcess(arguments: ["serve", "--config", config], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        func send() async throws -> (ok: Bool, output: String, seconds: Double) {
            let start = ContinuousClock.now
            let r = try await runMLHook(["send", "github", "push", "--payload", dir.file("push.json"), "--config", config,
                                              "--to", "http://127.0.0.1:\(server.port)/hooks/github"],
                                             environment: env, directory: dir.path)
            return (r.status == 0, r.output, (ContinuousClock.now - start) / .seconds(1))
        }
        #expect(try await send().ok)
        let ready = "http://127.0.0.1:\(server.port)/readyz"
        #expect(try await Self.status(ready) == 200)

        // Every connection of the replica ended by the database (pg_terminate_backend): it reconnects by itself.
        let ended = try await TestPostgres.psql(cluster.url, """
            SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mlhook') t
            """)
        #expect(ended != "0", "the replica's connections were found")
        let backAt = ContinuousClock.now
        #expect(try await eventually(timeout: .seconds(5)) { try await send().ok }, "ingest works again within 5 s")
        #expect(ContinuousClock.now - backAt < .seconds(5))

        try await cluster.run("pause")
        let pausedAt = ContinuousClock.now
        let down = try await send()
        #expect(!down.ok && down.output.hasPrefix("503"), "\(down.output)")
        #expect(down.seconds < 4, "answered within the 1 s ingest deadline (plus the CLI's start): \(down.seconds) s")
        let downAt = ContinuousClock.now
        #expect(try await eventually(timeout: .seconds(15)) { try await Self.status(ready) == 503 }, "readiness red within 15 s")
        #expect(ContinuousClock.now - downAt < .seconds(15))
        // Down for 30 s in all: ingest keeps answering 503 at once (it does not hang on the pool), readiness stays red.
        while ContinuousClock.now - pausedAt < .seconds(30) {
            let still = try await send()
            #expect(!still.ok && still.seconds < 4, "\(still.output) after \(still.seconds) s")
            #expect(try await Self.status(ready) == 503)
            try await Task.sleep(for: .seconds(3))
        }

        try await cluster.run("resume")
        #expect(try await eventually(timeout: .seconds(30)) { try await Self.status(ready) == 200 }, "ready again without a restart")
        #expect(try await eventually(timeout: .seconds(15)) { try await send().ok }, "ingest resumes")
        let events = try await runMLHook(["events", "ls", "--config", config], environment: env, directory: dir.path)
        #expect(events.output.split(separator: "\n").filter { $0.contains("\tpush\t") }.count >= 2, "\(events.output)")
    }

    @Test func theEmbeddedAMLLocalIsRefusedWithTheSharedStoreAndThePasswordIsNeverShown() async throws {
        let dir = try TemporaryDirectory("mlhook-scaleout-config")
        defer { dir.remove() }
        let config = dir.file("mlhook.yaml")
        try """
            store: { postgres: { url: "postgres://mlhook:pw-s3cr3t-never-shown@127.0.0.1:1/mlhook" } }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let check = try await runMLHook(["config", "check", "--config", config], environment: ["GH": "x"], directory: dir.path)
        #expect(check.status != 0 && check.output.contains("azureml.mode") && check.output.contains("aml-local"), "\(check.output)")
        #expect(!check.output.contains("pw-s3cr3t-never-shown"))
        let serve = try await runMLHook(["serve", "--config", config], environment: ["GH": "x"], directory: dir.path)
        #expect(serve.status != 0 && serve.output.contains("aml-local"), "\(serve.output)")
        #expect(!serve.output.contains("pw-s3cr3t-never-shown"))

        // Cloud mode, a database nobody listens on: the start fails naming the URL without its password.
        try """
            store: { postgres: { url: { env: DB }, connect_timeout_seconds: 2 } }
            azureml: { mode: cloud, cloud: { tenant_id: t, client_id: c, client_secret: { env: GH }, subscription_id: s, resource_group: g, workspace: w } }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["GH": "x", "DB": "postgres://mlhook:pw-s3cr3t-never-shown@127.0.0.1:1/mlhook?sslmode=disable"]
        let unreachable = try await runMLHook(["serve", "--config", config], environment: env, directory: dir.path)
        #expect(unreachable.status != 0 && unreachable.output.contains("postgres://mlhook:***@127.0.0.1:1/mlhook"), "\(unreachable.output)")
        #expect(!unreachable.output.contains("pw-s3cr3t-never-shown"))

        // Both stores named, or a URL that is not one: errors with the line and key.
        try """
            store: { path: x.db, postgres: { url: "mysql://root:pw-s3cr3t-never-shown@db/x" } }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let bad = try await runMLHook(["config", "check", "--config", config], environment: ["GH": "x"], directory: dir.path)
        #expect(bad.status != 0 && bad.output.contains("mlhook.yaml:1") && bad.output.contains("store.path")
                && bad.output.contains("store.postgres.url") && bad.output.contains("postgres://"), "\(bad.output)")
        #expect(!bad.output.contains("pw-s3cr3t-never-shown"))
    }

    /// The HTTP status of a GET (0 when nothing answers).
    static func status(_ url: String) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(5)) else { return 0 }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return Int(response.status.code)
    }

    /// A PostgreSQL cluster of one test's own (scripts/postgres.sh).
    struct Cluster {
        let url: String
        let data: String

        static func start() async throws -> Cluster {
            let out = try await script(["start"], environment: [:])
            func value(_ name: String) -> String? {
                out.split(separator: "\n").first { $0.hasPrefix("export \(name)=") }
                    .map { String($0.dropFirst("export \(name)=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "'")) }
            }
            guard let url = value("MLHOOK_TEST_DATABASE_URL"), let data = value("MLHOOK_TEST_PGDATA") else {
                throw TestPostgres.Failure(description: "scripts/postgres.sh start printed no URL: \(out)")
            }
            return Cluster(url: url, data: data)
        }

        func run(_ command: String) async throws { _ = try await Self.script([command], environment: ["MLHOOK_TEST_PGDATA": data]) }

        /// Runs `body` with a new cluster, stopped and removed afterwards whatever happens.
        static func with(_ body: (Cluster) async throws -> Void) async throws {
            let cluster = try await start()
            do { try await body(cluster) } catch {
                _ = try? await script(["stop"], environment: ["MLHOOK_TEST_PGDATA": cluster.data])
                throw error
            }
            _ = try await script(["stop"], environment: ["MLHOOK_TEST_PGDATA": cluster.data])
        }

        static func script(_ arguments: [String], environment: [String: String]) async throws -> String {
            let r = try await runProcessAsync("/bin/bash", [ScaleOutTests.root + "/scripts/postgres.sh"] + arguments, environment: environment)
            guard r.status == 0 else { throw TestPostgres.Failure(description: "scripts/postgres.sh \(arguments): \(r.output)") }
            return r.output
        }
    }
}
