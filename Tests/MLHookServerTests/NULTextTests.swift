import AsyncHTTPClient
import Foundation
import MLHookCore
import NIOCore
import Signing
import TestSupport
import Testing

/// A NUL (`\u0000`) in a signed branch or repository name: on PostgreSQL it failed the whole group commit it was in
/// (error 22021: 37 of 40 clean deliveries sent with it got 503). Now it is a 400 before anything is stored, on both
/// backends, and the clean deliveries sent with it are all stored.
@Suite struct NULTextTests {
    static func push(ref: String, repository: String, delivery: Int) -> [UInt8] {
        let payload: [String: Any] = [
            "ref": ref, "before": String(repeating: "0", count: 40), "after": String(repeating: "a", count: 39) + String(delivery % 10),
            "repository": ["full_name": repository, "name": "ml", "clone_url": "https://github.com/\(repository).git"],
            "pusher": ["name": "octocat"], "sender": ["login": "octocat"], "commits": [],
        ]
        return [UInt8]((try? JSONSerialization.data(withJSONObject: payload)) ?? Data())
    }

    func send(port: Int, body: [UInt8], delivery: String) async throws -> (status: Int, text: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/github")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-GitHub-Event", value: "push")
        request.headers.add(name: "X-GitHub-Delivery", value: delivery)
        for s in try WebhookSigner.github(secret: WebhookSecret("nul-secret"), body: body) { request.headers.add(name: s.name, value: s.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), text)
    }

    @Test(arguments: ["sqlite", "postgres"])
    func aNULInSignedTextIsRefusedAloneOnEveryBackend(backend: String) async throws {
        let dir = try TemporaryDirectory("mlhook-nul")
        defer { dir.remove() }
        var env = ["GH": "nul-secret", "MLHOOK_NO_SAMPLE": "1"]
        let database = backend == "postgres" ? try await TestPostgres.createDatabase() : nil
        defer { database?.drop() }
        if let database { env["DB_URL"] = database.url }
        try """
            server: { listen: "127.0.0.1:0" }
            store: \(database == nil ? "{ path: \"\(dir.file("mlhook.db"))\" }" : "{ postgres: { url: { env: DB_URL } } }")
            azureml: { mode: cloud }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: notify
                when: { source: github, kind: push }
                actions: [ { cancel_run: { run_id: "{{ branch }}-{{ repository.name }}", experiment: x } } ]
            """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: env, directory: dir.path)
        defer { server.signal(SIGTERM) }
        let port = server.port
        // 40 clean deliveries and two with a NUL (in the branch, in the repository), all at once.
        let results = try await withThrowingTaskGroup(of: (String, Int, String).self) { group in
            for i in 0..<40 {
                group.addTask { let r = try await send(port: port, body: Self.push(ref: "refs/heads/main", repository: "acme/ml", delivery: i), delivery: "clean-\(i)"); return ("clean", r.status, r.text) }
            }
            group.addTask { let r = try await send(port: port, body: Self.push(ref: "refs/heads/ma\u{0}in", repository: "acme/ml", delivery: 1), delivery: "nul-branch"); return ("nul", r.status, r.text) }
            group.addTask { let r = try await send(port: port, body: Self.push(ref: "refs/heads/main", repository: "acme/m\u{0}l", delivery: 2), delivery: "nul-repo"); return ("nul", r.status, r.text) }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let clean = results.filter { $0.0 == "clean" }, refused = results.filter { $0.0 == "nul" }
        #expect(clean.allSatisfy { $0.1 == 202 || $0.1 == 200 }, "\(clean.filter { $0.1 >= 300 }.prefix(3))")
        #expect(refused.allSatisfy { $0.1 == 400 && $0.2.contains("NUL") }, "\(refused)")
        // Every clean delivery is stored; the refused ones are not.
        let listed = try await runMLHook(["events", "ls", "--config", dir.file("mlhook.yaml"), "--limit", "100"], environment: env, directory: dir.path)
        #expect(listed.output.split(separator: "\n").filter { $0.contains("clean-") }.count == 40, "\(listed.output)")
        #expect(!listed.output.contains("nul-"), "\(listed.output)")
    }
}
