import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Signing
import Store
import Synchronization
import TestSupport
import Testing

/// kill -9 while a load is being acknowledged: every delivery that got a 2xx is in the store after restart.
@Suite(.serialized) struct CrashTests {
    @Test func everyAcknowledgedDeliverySurvivesKill9() async throws {
        let dir = try TemporaryDirectory("mlhook-crash")
        defer { dir.remove() }
        let config = """
            server: { listen: "127.0.0.1:0" }
            store: { path: "\(dir.file("mlhook.db"))" }
            sources:
              - { name: github, type: github, secrets: [ { env: CRASH_TEST_SECRET } ] }
            """
        try config.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let env = ["CRASH_TEST_SECRET": "crash-test-secret"]
        let body = try Fixtures.webhook("github", "push.tag-deleted.octokit.json")
        let signature = try WebhookSigner.github(secret: WebhookSecret("crash-test-secret"), body: body)[0].value

        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        let acknowledged = Acknowledged()
        let killAfter = 400
        let port = server.port
        // 8 senders post until the server dies; the 400th acknowledgement triggers kill -9.
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for i in 0..<2000 {
                        let delivery = "crash-\(worker)-\(i)"
                        var req = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/github")
                        req.method = .POST
                        req.headers.add(name: "Content-Type", value: "application/json")
                        req.headers.add(name: "X-GitHub-Event", value: "push")
                        req.headers.add(name: "X-GitHub-Delivery", value: delivery)
                        req.headers.add(name: "X-Hub-Signature-256", value: signature)
                        req.body = .bytes(ByteBuffer(bytes: body))
                        guard let res = try? await HTTPClient.shared.execute(req, timeout: .seconds(5)) else { return }
                        _ = try? await res.body.collect(upTo: 4096)
                        guard res.status.code == 202 else { continue }
                        let count = acknowledged.ids.withLock { $0.append(delivery); return $0.count }
                        if count == killAfter { server.signal(SIGKILL) }
                    }
                }
            }
        }
        let acked = acknowledged.ids.withLock { $0 }
        #expect(acked.count >= killAfter, "the load was acknowledged before the crash")
        #expect(try await server.waitForExit() != 0, "the server was killed")

        // Restart on the same file; it recovers the WAL and serves again.
        let restarted = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        let listing = try await runMLHook(["events", "ls", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        #expect(listing.status == 0)
        let stored = Set(listing.output.split(separator: "\n").compactMap { line -> String? in
            let cols = line.split(separator: "\t")
            return cols.count >= 4 ? String(cols[3]) : nil
        })
        let missing = acked.filter { !stored.contains($0) }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(10))")

        restarted.signal(SIGTERM)
        #expect(try await restarted.waitForExit() == 0, "SIGTERM stops the server cleanly")

        // And each of them with its body, byte for byte (bodies live in the body log beside the database).
        let store = try SQLiteStore(path: dir.file("mlhook.db"), logger: Logger(label: "test"))
        let ids = Dictionary(try await store.list(limit: nil, source: nil).map { ($0.deliveryID, $0.id) }, uniquingKeysWith: { a, _ in a })
        var damaged: [String] = []
        for delivery in acked {
            if try await store.event(id: ids[delivery] ?? "")?.body != body { damaged.append(delivery) }
        }
        #expect(damaged.isEmpty, "acknowledged but without their body: \(damaged.prefix(10))")
    }
}

/// Delivery ids that got a 2xx, shared by the senders.
final class Acknowledged: Sendable {
    let ids = Mutex<[String]>([])
}
