import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import NIOCore
import Signing
import Synchronization
import TestSupport
import Testing

/// Three `mlhook serve` replicas on one PostgreSQL cluster (this test's own), a separate `mlhook aml-local`, a real
/// git repository with many commits, a sender that round-robins signed pushes over the replicas with redeliveries
/// (some to another replica at the same moment), a loop that kill -9s a replica every 2-5 s and restarts it, and
/// once a `pg_ctl restart -m immediate`. Bounded: about 30 s of load and chaos, then at most 150 s to drain.
@Suite struct ChaosTests {
    static let commits = 14
    static let secret = "chaos-secret"

    @Test func killingReplicasAndRestartingTheDatabaseLosesAndRepeatsNothing() async throws {
        let dir = try TemporaryDirectory("mlhook-chaos")
        defer { dir.remove() }
        try await ScaleOutTests.Cluster.with { cluster in try await Self.chaos(cluster, dir) }
    }

    static func chaos(_ cluster: ScaleOutTests.Cluster, _ dir: TemporaryDirectory) async throws {
        let aml = try await AMLLocalProcess.start(in: dir)
        defer { aml.process.signal(SIGTERM) }

        // A repository with one commit per push; each run takes a few seconds, so kills land while runs are followed.
        let (repo, shas) = try await trainingRepository(in: dir, scripts: (0..<commits).map { "import time\ntime.sleep(3)\nprint('commit \($0)')\n" })

        let receiver = Receiver(failFirst: 0)
        let rApp = Application(router: receiver.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await rApp.test(.live) { rc in
            let config = dir.file("mlhook.yaml")
            try """
                server: { listen: "127.0.0.1:0" }
                store:
                  postgres: { url: { env: DB_URL }, pool_size: 4, ingest_timeout_ms: 5000 }
                scheduler: { catch_up_seconds: 0 }
                jobs: { lease_seconds: 10 }
                \(aml.cloudYAML(secretEnv: "AML_SECRET"))
                sources:
                  - { name: github, type: github, secrets: [ { env: GH_SECRET } ], git_schemes: [file] }
                rules:
                  - name: retrain
                    when: { source: github, kind: push, branches: [main] }
                    actions: [ { start_run: { experiment: chaos, dir: train, script: train.py, compute: cpu-cluster } } ]
                    callback: [ { url: { url: "http://127.0.0.1:\(rc.port!)/cb", secret: { env: CB } } } ]
                  - name: tick
                    when: { schedule: "* * * * *" }
                    actions: [ { scale_compute: { name: cpu-cluster, max_nodes: 4 } } ]
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let env = ["GH_SECRET": secret, "AML_SECRET": aml.credential("client_secret"), "DB_URL": cluster.url,
                       "CB": "whsec_" + ByteEncoding.base64(Array(repeating: 9, count: 32))]
            let replicas = Replicas(config: config, env: env, directory: dir.path)
            for i in 0..<3 { try await replicas.start(i) }
            let started = Date()

            // The sender: one push per commit, round-robin; every fifth also to another replica at the same moment,
            // and every seventh again later. A refused or failed post is retried elsewhere, as a sender would.
            let acknowledged = Shared<Set<String>>([])
            let sender = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (i, sha) in shas.enumerated() {
                        let body = try Fixtures.githubPush(commit: sha, cloneURL: "file://\(repo)")
                        let delivery = "chaos-\(i)"
                        let copies = i % 5 == 0 ? 2 : 1
                        for copy in 0..<copies {
                            group.addTask {
                                if try await post(body, delivery: delivery, replicas: replicas, first: i + copy) {
                                    acknowledged.value.withLock { _ = $0.insert(delivery) }
                                }
                            }
                        }
                        if i % 7 == 3 {
                            group.addTask {
                                try await Task.sleep(for: .seconds(4))
                                _ = try await post(body, delivery: delivery, replicas: replicas, first: i + 1)
                            }
                        }
                        try await Task.sleep(for: .milliseconds(1500))
                    }
                    try await group.waitForAll()
                }
            }

            // Chaos: kill -9 a replica every 2-5 s (preferring one that follows a run), restart it after 1 s; once, the
            // database crashes and restarts.
            var kills = 0
            var restartedDatabase = false
            var orphaned: Set<String> = []
            let chaosEnd = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < chaosEnd {
                try await Task.sleep(for: .milliseconds(Int.random(in: 2000...5000)))
                if !restartedDatabase && kills == 3 {
                    try await cluster.run("restart-immediate")
                    restartedDatabase = true
                }
                let owners = (try? await TestPostgres.psql(cluster.url, "SELECT DISTINCT lease_owner FROM jobs WHERE state IN ('watching', 'running') AND lease_owner IS NOT NULL")) ?? ""
                let busyPIDs = Set(owners.split(separator: "\n").compactMap { $0.split(separator: ":").dropFirst().first.flatMap { Int32($0) } })
                let victim = await replicas.pick(preferring: busyPIDs)
                let pid = await replicas.pids()[victim]
                await replicas.kill(victim)
                // What the dead replica held (a claimed job, a followed run): only another replica can end it now.
                if let pid {
                    let held = (try? await TestPostgres.psql(cluster.url, """
                        SELECT id FROM jobs WHERE state IN ('watching', 'running') AND lease_owner LIKE '%:\(pid):%'
                        """)) ?? ""
                    orphaned.formUnion(held.split(separator: "\n").map(String.init))
                }
                kills += 1
                try await Task.sleep(for: .seconds(1))
                try await replicas.start(victim)
            }
            _ = try await sender.value
            #expect(kills >= 5 && restartedDatabase)

            // Drain: every event terminal, no job in progress, no callback pending.
            let drained = try await eventually(timeout: .seconds(150)) {
                let busy = (try? await TestPostgres.psql(cluster.url, """
                    SELECT (SELECT count(*) FROM events WHERE state = 'received') + (SELECT count(*) FROM jobs WHERE state IN ('queued', 'running', 'watching'))
                         + (SELECT count(*) FROM callbacks WHERE state = 'pending')
                    """)) ?? "?"
                return busy == "0"
            }
            let jobs = try await TestPostgres.psql(cluster.url, "SELECT state, count(*) FROM jobs WHERE rule = 'retrain' GROUP BY state ORDER BY state")
            #expect(drained, "every event and job terminal, every callback delivered: \(jobs)")

            // 1. Every acknowledged delivery is stored.
            let stored = Set(try await TestPostgres.psql(cluster.url, "SELECT delivery_id FROM events WHERE source = 'github'").split(separator: "\n").map(String.init))
            let acked = acknowledged.value.withLock { $0 }
            #expect(acked.count == commits, "every push was acknowledged by some replica: \(acked.count)")
            #expect(acked.isSubset(of: stored), "lost: \(acked.subtracting(stored).sorted())")
            // 2. Each commit: one job, succeeded, exactly one run at aml-local.
            #expect(jobs == "succeeded|\(commits)", "\(jobs)")
            let runs = try FileManager.default.contentsOfDirectory(atPath: dir.file("aml/runs"))
            #expect(runs.count == commits, "one run per commit, got \(runs.count)")
            // 3. Each commit: exactly one final callback (redeliveries of it carry the same webhook-id).
            var finals: [String: Set<String>] = [:]
            for d in receiver.accepted {
                guard let doc = JSONValue(json: d.body), let commit = doc.value(at: "data.provenance.commit")?.string,
                      let id = d.headers.first(where: { $0.name.canonicalName == "webhook-id" })?.value else { continue }
                finals[commit, default: []].insert(id)
            }
            #expect(finals.count == commits && finals.values.allSatisfy { $0.count == 1 }, "\(finals.mapValues(\.count))")
            // 4. A kill landed mid-job, so the above is not vacuous: jobs the killed replicas held were ended by others.
            #expect(!orphaned.isEmpty, "no kill landed while a replica held a job")
            if !orphaned.isEmpty {
                let ended = try await TestPostgres.psql(cluster.url, "SELECT count(*) FROM jobs WHERE state = 'succeeded' AND id IN ("
                                                        + orphaned.map { "'\($0)'" }.joined(separator: ",") + ")")
                #expect(ended == String(orphaned.count), "every job a killed replica held was taken over and succeeded")
            }
            let reclaimed = try await TestPostgres.psql(cluster.url, "SELECT count(*) FROM jobs WHERE attempts > 1")
            // 5. Every cron tick in the window fired once.
            let ticks = try await TestPostgres.psql(cluster.url, "SELECT delivery_id FROM events WHERE source = 'schedule' ORDER BY 1")
                .split(separator: "\n").map(String.init)
            #expect(Set(ticks).count == ticks.count)
            let calendar = Calendar(identifier: .gregorian)
            var minute = calendar.nextDate(after: started, matching: DateComponents(second: 0), matchingPolicy: .nextTime)!
            var expected: [String] = []
            while minute.addingTimeInterval(5) < Date() {
                expected.append("schedule:tick:" + minute.formatted(.iso8601))
                minute.addTimeInterval(60)
            }
            #expect(Set(expected).isSubset(of: Set(ticks)), "ticks \(ticks), expected \(expected)")
            let tickJobs = try await TestPostgres.psql(cluster.url, "SELECT count(*) FROM jobs WHERE rule = 'tick'")
            #expect(tickJobs == String(ticks.count), "one job per tick")
            print("chaos: \(kills) kills, database restarted: \(restartedDatabase), acknowledged \(acked.count), runs \(runs.count), "
                  + "callback deliveries \(receiver.accepted.count), jobs claimed again \(reclaimed), jobs taken over from killed replicas \(orphaned.count), ticks \(ticks.count)")
            await replicas.stopAll()
        }
    }

    /// Posts one signed push, retrying on other replicas until one answers 2xx (at most 60 tries, 250 ms apart).
    static func post(_ body: [UInt8], delivery: String, replicas: Replicas, first: Int) async throws -> Bool {
        for attempt in 0..<60 {
            if let port = await replicas.port(first + attempt) {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/github")
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "X-GitHub-Event", value: "push")
                request.headers.add(name: "X-GitHub-Delivery", value: delivery)
                for h in try WebhookSigner.github(secret: WebhookSecret(secret), body: body) { request.headers.add(name: h.name, value: h.value) }
                request.body = .bytes(ByteBuffer(bytes: body))
                if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(10)) {
                    _ = try? await response.body.collect(upTo: 1 << 16)
                    if (200..<300).contains(Int(response.status.code)) { return true }
                }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        return false
    }

    /// A value several tasks update.
    final class Shared<T: Sendable>: Sendable {
        let value: Mutex<T>
        init(_ initial: T) { value = Mutex(initial) }
    }

    /// The replicas, by slot: started, killed and restarted by the chaos loop, looked up by the sender.
    actor Replicas {
        let config: String
        let env: [String: String]
        let directory: String
        var slots: [Int: ServerProcess] = [:]

        init(config: String, env: [String: String], directory: String) {
            self.config = config
            self.env = env
            self.directory = directory
        }

        func start(_ slot: Int) async throws {
            slots[slot] = try await ServerProcess(arguments: ["serve", "--config", config], environment: env, directory: directory)
        }

        func kill(_ slot: Int) async {
            guard let p = slots.removeValue(forKey: slot) else { return }
            p.signal(SIGKILL)
            _ = try? await p.waitForExit()
        }

        /// A running replica's port for the n-th try (round-robin), nil when that slot is down.
        func port(_ n: Int) -> Int? { slots[n % 3]?.port }

        /// A slot to kill: one whose process follows a run or holds a job when there is one.
        func pick(preferring pids: Set<Int32>) -> Int {
            let busy = slots.filter { pids.contains($0.value.pid) }.map(\.key)
            return busy.randomElement() ?? Int.random(in: 0..<3)
        }

        func pids() -> [Int: Int32] { slots.mapValues(\.pid) }

        func stopAll() async {
            for (_, p) in slots { p.signal(SIGTERM) }
            for (_, p) in slots { _ = try? await p.waitForExit(timeout: .seconds(15)) }
            slots = [:]
        }
    }
}
