import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Signing
import TestSupport
import Testing

/// Requests over real sockets: the ones a well-behaved client never sends, and many at once.
@Suite struct LiveIngressTests {
    @Test func aTruncatedBodyIsNeverStored() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let body = try Fixtures.webhook("github", "push.new-branch-1-commit.octokit.json")
        let sig = try WebhookSigner.github(secret: h.secret("GH"), body: body)[0].value
        try await h.app.test(.live) { client in
            let port = try #require(client.port)
            // The sender declares the whole body, sends a fifth of it, and hangs up.
            let head = "POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "X-GitHub-Event: push\r\nX-GitHub-Delivery: cut-1\r\nX-Hub-Signature-256: \(sig)\r\n"
                + "Content-Length: \(body.count)\r\n\r\n"
            _ = RawHTTP.exchange(port: port, Array(head.utf8) + body.prefix(body.count / 5), closeAfterWrite: true)
            #expect(try await eventually(timeout: .seconds(10)) { h.rejections.count == 1 })
        }
        #expect(try await h.count() == 0)
        #expect(h.rejections.first?.message.contains("could not be read completely") == true)
    }

    @Test func anOversizedChunkedBodyIsCutOffAt413() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try await h.app.test(.live) { client in
            let port = try #require(client.port)
            // No Content-Length: the limit must hold while streaming.
            var request = Array("POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            let chunk = Array(repeating: UInt8(ascii: "a"), count: 16_384)
            // Exactly one byte past the 64 KiB limit, and nothing after it: the server reads everything sent before it
            // answers, so its close cannot reset the connection and lose the answer (more data left unread could).
            for _ in 0..<4 { request += Array("4000\r\n".utf8) + chunk + Array("\r\n".utf8) }
            request += Array("1\r\na\r\n".utf8)
            let sent = request
            let response = await offCooperativePool {
                RawHTTP.exchange(port: port, sent, closeAfterWrite: false, readTimeout: 10) { $0.contains("\r\n\r\n") && $0.hasSuffix("}") }
            }
            #expect(response.hasPrefix("HTTP/1.1 413"), "got: \(response.prefix(200))")
        }
        #expect(try await h.count() == 0)
    }

    @Test func concurrentDeliveriesAreAllStoredThroughGroupCommit() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let body = try Fixtures.webhook("github", "push.branch-1-commit.go-scm.json")
        let signature = try WebhookSigner.github(secret: h.secret("GH"), body: body)[0].value
        let n = 300
        try await h.app.test(.live) { client in
            let port = try #require(client.port)
            let statuses = try await withThrowingTaskGroup(of: (String, UInt).self) { group in
                for i in 0..<n {
                    group.addTask {
                        var req = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/github")
                        req.method = .POST
                        req.headers.add(name: "Content-Type", value: "application/json")
                        req.headers.add(name: "X-GitHub-Event", value: "push")
                        req.headers.add(name: "X-GitHub-Delivery", value: "concurrent-\(i)")
                        req.headers.add(name: "X-Hub-Signature-256", value: signature)
                        req.body = .bytes(ByteBuffer(bytes: body))
                        let res = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
                        let collected = try await res.body.collect(upTo: 4096)
                        let id = (try? JSONSerialization.jsonObject(with: Data(collected.readableBytesView)) as? [String: Any])?["event_id"] as? String
                        return (id ?? "", res.status.code)
                    }
                }
                return try await group.reduce(into: [(String, UInt)]()) { $0.append($1) }
            }
            #expect(statuses.allSatisfy { $0.1 == 202 })
            #expect(Set(statuses.map(\.0)).count == n, "every delivery got its own event id")
        }
        let stored = try await h.store.list(limit: nil, source: "github")
        #expect(stored.count == n)
        #expect(Set(stored.map(\.deliveryID)) == Set((0..<n).map { "concurrent-\($0)" }))
    }
}

/// Memory before authentication is bounded over all requests: bodies being read hold a budget, and a request that
/// would pass it is answered 503 with Retry-After without being read.
@Suite struct InflightBodyBudgetTests {
    @Test func aRequestPastTheBudgetIsRefusedUntilTheFirstIsDone() async throws {
        let h = try IngressHarness(config: IngressHarness.config.replacingOccurrences(
            of: "max_body_bytes: 65536 }", with: "max_body_bytes: 65536, max_inflight_body_bytes: 100000 }"))
        defer { h.dir.remove() }
        #expect(h.runtime.config.server.maxInflightBodyBytes == 100_000)
        let body = Array(("{\"zen\":\"" + String(repeating: "z", count: 59_000) + "\",\"hook_id\":1}").utf8)
        @Sendable func request(_ delivery: String) throws -> [UInt8] {
            var head = "POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: ping\r\n"
            head += "X-GitHub-Delivery: \(delivery)\r\nContent-Length: \(body.count)\r\n"
            for h in try WebhookSigner.github(secret: h.secret("GH"), body: body) { head += "\(h.name): \(h.value)\r\n" }
            return Array((head + "\r\n").utf8) + body
        }
        try await h.app.test(.live) { client in
            let port = try #require(client.port)
            // A slow upload holds its 60 kB of the 100 kB budget.
            let first = try #require(RawConnection(port: port))
            let full = try request("slow-1")
            await offCooperativePool { first.send(Array(full[..<(full.count - body.count / 2)])) }
            try await Task.sleep(for: .milliseconds(300))
            // Its headers alone decide: the body is never sent, so the answer cannot be lost to a reset.
            let second = try #require(RawConnection(port: port))
            let head = try request("second")
            let refused = await offCooperativePool {
                second.send(Array(head[..<(head.count - body.count)]))
                return second.read(timeout: 10) { $0.contains("}") }
            }
            #expect(refused.hasPrefix("HTTP/1.1 503") && refused.lowercased().contains("retry-after: 1") && refused.contains("server_busy"),
                    "\(refused.prefix(400))")
            // The slow one finishes and is stored; its budget comes back, and the retry is accepted.
            let finished = await offCooperativePool {
                first.send(Array(full[(full.count - body.count / 2)...]))
                return first.read(timeout: 10) { $0.contains("}") }
            }
            #expect(finished.hasPrefix("HTTP/1.1 202"), "\(finished.prefix(300))")
            let again = try request("second")
            let retried = await offCooperativePool { RawHTTP.exchange(port: port, again, closeAfterWrite: false, readTimeout: 10) { $0.contains("}") } }
            #expect(retried.hasPrefix("HTTP/1.1 202"), "\(retried.prefix(400))")
        }
        #expect(try await h.count() == 2)
    }
}

/// A connection that sends nothing is closed after server.idle_timeout_seconds instead of being held open.
@Suite struct IdleTimeoutTests {
    @Test func anIdleConnectionIsClosed() async throws {
        let dir = try TemporaryDirectory("mlhook-idle")
        defer { dir.remove() }
        try writeServeConfig(dir, server: "idle_timeout_seconds: 1")
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: ["GH": "g"], directory: dir.path)
        defer { server.signal(SIGTERM) }
        let idle = try #require(RawConnection(port: server.port))
        let started = ContinuousClock.now
        // The server closes it (recv returns 0) long before the 20 s this read would otherwise wait.
        #expect(idle.read(timeout: 20).isEmpty)
        #expect(ContinuousClock.now - started < .seconds(10), "closed after about 1 s")
    }
}

/// A sender cannot hold a connection by trickling bytes, and the number of connections is capped: both on the
/// real binary, where the idle timeout alone restarts on every byte.
@Suite struct ReadDeadlineAndConnectionCapTests {
    func serve(_ server: String) async throws -> (ServerProcess, TemporaryDirectory) {
        let dir = try TemporaryDirectory("mlhook-deadline")
        try writeServeConfig(dir, server: server)
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: ["GH": "g"], directory: dir.path)
        return (server, dir)
    }

    @Test func aTricklingRequestIsCutOffAtTheReadDeadline() async throws {
        let (server, dir) = try await serve("idle_timeout_seconds: 30, read_timeout_seconds: 1")
        defer { server.signal(SIGTERM); dir.remove() }
        let slow = try #require(RawConnection(port: server.port))
        slow.send(Array("POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: ping\r\nContent-Length: 1000\r\n\r\n".utf8))
        let started = ContinuousClock.now
        // One byte every 200 ms for 12 s: never idle, never complete.
        let trickle = Task.detached {
            for _ in 0..<60 where !Task.isCancelled {
                slow.send([UInt8(ascii: "{")])
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { trickle.cancel() }
        let answer = await offCooperativePool { slow.read(timeout: 20) }
        #expect(ContinuousClock.now - started < .seconds(8), "closed after about 1 s, not when the sender stopped")
        #expect(!answer.hasPrefix("HTTP/1.1 2"), "\(answer.prefix(200))")
    }

    @Test func connectionsPastTheCapWaitUntilOneCloses() async throws {
        let (server, dir) = try await serve("max_connections: 2")
        defer { server.signal(SIGTERM); dir.remove() }
        let first = try #require(RawConnection(port: server.port))
        let second = try #require(RawConnection(port: server.port))
        try await Task.sleep(for: .milliseconds(500))
        let third = try #require(RawConnection(port: server.port))
        third.send(Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        let waiting = await offCooperativePool { third.read(timeout: 2) { $0.contains("}") } }
        #expect(waiting.isEmpty, "a third connection was served while two were open: \(waiting.prefix(100))")
        first.close()
        let served = await offCooperativePool { third.read(timeout: 10) { $0.contains("}") } }
        #expect(served.hasPrefix("HTTP/1.1 200"), "\(served.prefix(200))")
        _ = second
    }
}

/// The embedded aml-local keeps its port across restarts (when none is configured and the old one is free), so
/// its saved credentials.json and `mlhook aml --config` keep working.
@Suite struct EmbeddedAMLPortTests {
    @Test func theEmbeddedServerKeepsItsPortAcrossARestart() async throws {
        let dir = try TemporaryDirectory("mlhook-aml-port")
        defer { dir.remove() }
        try writeServeConfig(dir)
        /// Starts the server and reads the port from the credentials.json it writes once bound.
        func servedPort() async throws -> Int? {
            let path = dir.file("aml/credentials.json")
            let before = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? .distantPast
            let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: ["GH": "g"], directory: dir.path)
            var port: Int?
            for _ in 0..<200 where port == nil {
                let written = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? .distantPast
                if written > before, let data = FileManager.default.contents(atPath: path),
                   let saved = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                   let base = saved["base_url"] as? String, let p = URL(string: base)?.port {
                    port = p
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            server.signal(SIGTERM)
            _ = try await server.waitForExit()
            return port
        }
        let first = try #require(try await servedPort())
        try await Task.sleep(for: .milliseconds(20))  // a later modification time for the second write
        let second = try #require(try await servedPort())
        #expect(second == first)
    }
}

/// Writes `DIR/mlhook.yaml` for `mlhook serve` on a free port, its store and aml-local inside DIR, one GitHub
/// source (secret in GH), with `server` added to the server mapping. - Returns: the file's path.
@discardableResult
func writeServeConfig(_ dir: TemporaryDirectory, server: String = "") throws -> String {
    let extra = server.isEmpty ? "" : ", " + server
    try """
        server: { listen: "127.0.0.1:0"\(extra) }
        store: { path: "\(dir.file("m.db"))" }
        azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
        sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
        """.write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
    return dir.file("mlhook.yaml")
}
