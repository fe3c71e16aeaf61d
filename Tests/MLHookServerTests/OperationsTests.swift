import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MLHookCore
import MLHookServer
import NIOCore
import Signing
import Store
import TestSupport
import Testing

/// `/metrics`, the admin API and the status page, in process over a real store.
@Suite struct OperationsTests {
    static let adminToken = "admin-token-\(UUID().uuidString)"

    /// A store with three GitHub pushes, one bad signature, one job per state of interest and a dead callback.
    func seeded() async throws -> IngressHarness {
        let h = try IngressHarness()
        h.runtime.live.adminToken = WebhookSecret(Self.adminToken)
        try await h.app.test(.router) { client in
            let body = try Fixtures.webhook("github", "push.new-branch-1-commit.octokit.json")
            for i in 0..<3 {
                let headers = HTTPFields(try WebhookSigner.github(secret: h.secret("GH"), body: body).map { ($0.name, $0.value) }
                    + [("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "ops-\(i)"), ("Content-Type", "application/json")])
                try await client.execute(uri: "/hooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { #expect($0.status == .accepted) }
            }
            let bad = HTTPFields([("X-Hub-Signature-256", "sha256=" + String(repeating: "0", count: 64)), ("X-GitHub-Event", "push"),
                                  ("X-GitHub-Delivery", "forged"), ("Content-Type", "application/json")])
            try await client.execute(uri: "/hooks/github", method: .post, headers: bad, body: ByteBuffer(bytes: body)) { #expect($0.status == .unauthorized) }
        }
        let events = try await h.store.list(limit: nil, source: nil)
        let jobs = events.enumerated().map { i, e in
            NewJob(idempotencyKey: "r#0@\(e.id)", eventID: e.id, rule: "r", actionIndex: 0, action: "delete_model", parameters: #"{"id":"m:\#(i + 1)"}"#, maxAttempts: 1)
        }
        try await h.store.recordPlans([], jobs: jobs)
        // One job fails for good and its callback is dead-lettered.
        let failed = try #require(try await h.store.claimJob(now: Date(), lease: 60, ruleLimits: [:], actions: ["delete_model"]))
        try await h.store.finishAttempt(id: failed.id, state: .failed, error: "model m:1 not found", result: nil, retryAt: nil, startedAt: Date(), now: Date(),
                                        callbacks: [NewCallback(jobID: failed.id, eventID: failed.eventID, rule: "r", targetIndex: 0, kind: "url",
                                                                url: "https://hooks.example.com/secret-path?token=abc", body: "{}")])
        let cb = try #require(try await h.store.callbacks(limit: nil, state: nil).first)
        try await h.store.recordDelivery(id: cb.id, state: .dead, status: 500, error: "the receiver answered 500", retryAt: nil)
        return h
    }

    func get(_ client: some TestClientProtocol, _ uri: String, token: String? = OperationsTests.adminToken,
             _ check: @escaping @Sendable (TestResponse) throws -> Void) async throws {
        let headers: HTTPFields = token.map { [.authorization: "Bearer \($0)"] } ?? [:]
        try await client.execute(uri: uri, method: .get, headers: headers, body: nil) { try check($0) }
    }

    func json(_ client: some TestClientProtocol, _ uri: String) async throws -> JSONValue? {
        try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(Self.adminToken)"], body: nil) {
            JSONValue(json: Array($0.body.readableBytesView))
        }
    }

    @Test func theAdminAPIIsOffWithoutATokenAndRefusesWrongOnes() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        try await h.app.test(.router) { client in
            for path in ["/api/v1/events", "/api/v1/jobs", "/ui", "/ui/login"] {
                try await get(client, path) { #expect($0.status == .notFound, "\(path) is off, not open") }
            }
        }
        h.runtime.live.adminToken = WebhookSecret(Self.adminToken)
        try await h.app.test(.router) { client in
            try await get(client, "/api/v1/events", token: nil) { #expect($0.status == .unauthorized && $0.headers[.wwwAuthenticate] != nil) }
            try await get(client, "/api/v1/events", token: "wrong") { #expect($0.status == .unauthorized) }
            try await get(client, "/api/v1/events", token: Self.adminToken + "x") { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/events", method: .get, headers: [.authorization: "Basic \(Self.adminToken)"], body: nil) {
                #expect($0.status == .unauthorized)
            }
            try await get(client, "/api/v1/events") { #expect($0.status == .ok) }
        }
        #expect(h.leakedSecrets().isEmpty && !h.logs.lines.contains { $0.text.contains(Self.adminToken) })
    }

    @Test func listsFilterAndPageAndActionsWork() async throws {
        let h = try await seeded()
        defer { h.dir.remove() }
        try await h.app.test(.router) { client in
            // Paging: 3 events, 2 per page.
            let page1 = try await json(client, "/api/v1/events?limit=2")
            let firstPage = page1?["items"]?.array?.compactMap { $0["id"]?.string } ?? []
            let next = page1?["next"]?.string ?? ""
            #expect(firstPage.count == 2 && next == firstPage.last)
            try await get(client, "/api/v1/events?limit=2&before=\(next)") { r in
                let doc = JSONValue(json: Array(r.body.readableBytesView))
                #expect(doc?["items"]?.array?.count == 1 && doc?["next"] == JSONValue.null, "the last page says next: null")
                #expect(doc?["items"]?.array?.first?["delivery_id"]?.string == "ops-0", "newest first")
            }
            try await get(client, "/api/v1/events?source=gitlab") { r in #expect(JSONValue(json: Array(r.body.readableBytesView))?["items"]?.array?.isEmpty == true) }
            try await get(client, "/api/v1/events?limit=0") { #expect($0.status == .badRequest) }
            try await get(client, "/api/v1/jobs?state=bogus") { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("state must be one of queued"))
            }
            // One event in full.
            try await get(client, "/api/v1/events/\(firstPage[0])") { r in
                let doc = JSONValue(json: Array(r.body.readableBytesView))
                #expect(doc?["delivery_id"]?.string == "ops-2" && doc?["body"]?.string?.contains("\"ref\"") == true)
                #expect(doc?["headers"]?["x-github-event"]?.string == "push" || doc?["headers"]?["X-GitHub-Event"]?.string == "push")
            }
            try await get(client, "/api/v1/events/evt_nope") { #expect($0.status == .notFound) }

            // Jobs: filter by state; retry only failed or dead ones.
            let items = try await json(client, "/api/v1/jobs?state=failed")?["items"]?.array ?? []
            #expect(items.count == 1 && items.first?["last_error"]?.string == "model m:1 not found")
            let failedID = items.first?["id"]?.string ?? ""
            try await get(client, "/api/v1/jobs/\(failedID)") { r in
                let doc = JSONValue(json: Array(r.body.readableBytesView))
                #expect(doc?.value(at: "job.state")?.string == "failed" && doc?["attempts"]?.array?.count == 1)
            }
            let queued = try #require(try await h.store.jobs(limit: nil, state: .queued).first)
            let auth: HTTPFields = [.authorization: "Bearer \(Self.adminToken)"]
            try await client.execute(uri: "/api/v1/jobs/\(queued.id)/retry", method: .post, headers: auth, body: nil) { #expect($0.status == .conflict) }
            try await client.execute(uri: "/api/v1/jobs/\(failedID)/retry", method: .post, headers: auth, body: nil) { #expect($0.status == .ok) }
            #expect(try await h.store.job(id: failedID)?.state == .queued)

            // Callbacks: the dead one, replayed.
            let deadID = try await json(client, "/api/v1/callbacks?state=dead")?["items"]?.array?.first?["id"]?.string ?? ""
            try await client.execute(uri: "/api/v1/callbacks/\(deadID)/replay", method: .post, headers: auth, body: nil) { #expect($0.status == .ok) }
            #expect(try await h.store.callback(id: deadID)?.state == .pending)
            try await client.execute(uri: "/api/v1/callbacks/msg_nope/replay", method: .post, headers: auth, body: nil) { #expect($0.status == .notFound) }
        }
    }

    @Test func metricsCountWhatHappened() async throws {
        let h = try await seeded()
        defer { h.dir.remove() }
        try await h.app.test(.router) { client in
            try await get(client, "/metrics", token: nil) { r in
                let text = String(buffer: r.body)
                #expect(r.status == .ok && r.headers[.contentType]?.hasPrefix("text/plain") == true)
                #expect(text.contains(#"mlhook_events_received_total{source="github",kind="push",outcome="stored"} 3"#), "\(text)")
                #expect(text.contains(#"mlhook_events_received_total{source="github",kind="",outcome="invalid_signature"} 1"#))
                #expect(text.contains(#"mlhook_signature_failures_total{source="github",reason="signature_mismatch"} 1"#))
                #expect(text.contains("mlhook_ingest_duration_seconds_count 4"))
                #expect(text.contains(#"mlhook_queue_depth{queue="events_unplanned"} "#), "the planner may or may not have run yet")
                #expect(text.contains(#"mlhook_queue_depth{queue="jobs_queued"} 2.0"#))
                #expect(text.contains(#"mlhook_jobs{state="failed"} 1.0"#))
                #expect(text.contains(#"mlhook_callbacks_stored{state="dead"} 1.0"#))
            }
        }
    }

    /// Guessing the admin token at /ui/login is slowed: after 10 wrong tries in a minute every sign-in waits (429
    /// with Retry-After), the right token too. Under TLS the session cookie is Secure.
    @Test func signInIsRateLimitedAndTheCookieIsSecureUnderTLS() async throws {
        let h = try await seeded()
        defer { h.dir.remove() }
        var runtime = h.runtime
        runtime.scheme = "https"
        let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        let right = ByteBuffer(string: "token=" + FormURLEncoded.escape(Self.adminToken))
        try await buildApplication(runtime).test(.router) { client in
            let cookie = try await client.execute(uri: "/ui/login", method: .post, headers: form, body: right) { $0.headers[.setCookie] ?? "" }
            #expect(cookie.hasSuffix("; Secure"), "\(cookie)")
            for _ in 0..<10 {
                try await client.execute(uri: "/ui/login", method: .post, headers: form, body: ByteBuffer(string: "token=guess")) { #expect($0.status == .unauthorized) }
            }
            try await client.execute(uri: "/ui/login", method: .post, headers: form, body: right) { r in
                #expect(r.status == .tooManyRequests)
                #expect(Int(r.headers[.retryAfter] ?? "") ?? 0 >= 1)
                #expect(r.headers[.setCookie] == nil)
            }
        }
        try await h.app.test(.router) { client in
            let cookie = try await client.execute(uri: "/ui/login", method: .post, headers: form, body: right) { $0.headers[.setCookie] ?? "" }
            #expect(!cookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back")
        }
    }

    @Test func theStatusPageNeedsASignInAndItsButtonsNeedTheCSRFToken() async throws {
        let h = try await seeded()
        defer { h.dir.remove() }
        try await h.app.test(.router) { client in
            try await get(client, "/ui", token: nil) { r in #expect(r.status == .seeOther && r.headers[.location] == "/ui/login") }
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            try await client.execute(uri: "/ui/login", method: .post, headers: form, body: ByteBuffer(string: "token=nope")) { #expect($0.status == .unauthorized) }
            let set = try await client.execute(uri: "/ui/login", method: .post, headers: form,
                                               body: ByteBuffer(string: "token=" + FormURLEncoded.escape(Self.adminToken))) { r in
                #expect(r.status == .seeOther)
                return r.headers[.setCookie] ?? ""
            }
            #expect(set.contains("HttpOnly") && set.contains("SameSite=Strict"))
            let cookie = String(set.split(separator: ";")[0])
            let page = try await client.execute(uri: "/ui", method: .get, headers: [.cookie: cookie], body: nil) { r in
                #expect(r.status == .ok)
                return String(buffer: r.body)
            }
            #expect(page.contains("ops-2") && page.contains("model m:1 not found") && page.contains("Replay"))
            #expect(page.contains("http-equiv=refresh"), "it refreshes itself")
            #expect(!page.contains("secret-path") && !page.contains("token=abc"), "callback URLs are shown by origin only")
            let deadID = try #require(try await h.store.callbacks(limit: nil, state: .dead).first?.id)
            let csrf = try #require(page.range(of: "name=csrf value=\"").map { String(page[$0.upperBound...].prefix(64)) })
            // Without the CSRF token, or from another site: refused, nothing replayed.
            var post = form
            post[.cookie] = cookie
            try await client.execute(uri: "/ui/callbacks/\(deadID)/replay", method: .post, headers: post, body: ByteBuffer(string: "csrf=0")) {
                #expect($0.status == .forbidden)
            }
            var foreign = post
            foreign[.origin] = "https://evil.example"
            try await client.execute(uri: "/ui/callbacks/\(deadID)/replay", method: .post, headers: foreign, body: ByteBuffer(string: "csrf=\(csrf)")) {
                #expect($0.status == .forbidden)
            }
            #expect(try await h.store.callback(id: deadID)?.state == .dead)
            try await client.execute(uri: "/ui/callbacks/\(deadID)/replay", method: .post, headers: post, body: ByteBuffer(string: "csrf=\(csrf)")) { r in
                #expect(r.status == .seeOther)
            }
            #expect(try await h.store.callback(id: deadID)?.state == .pending)
            // A forged session cookie is not a session.
            try await client.execute(uri: "/ui", method: .get, headers: [.cookie: "mlhook_ui=9999999999.\(String(repeating: "a", count: 64))"], body: nil) {
                #expect($0.status == .seeOther)
            }
        }
    }
}
