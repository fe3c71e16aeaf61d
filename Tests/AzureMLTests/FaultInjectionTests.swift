import AzureML
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MLHookCore
import NIOCore
import Synchronization
import Testing

/// A scripted fake Azure on loopback: each path answers from a queue of canned replies.
final class FakeAzure: Sendable {
    struct Canned: Sendable {
        var status: HTTPResponse.Status
        var body: String = "{}"
        var headers: [(String, String)] = []
        var delay: Duration = .zero
    }

    private let state = Mutex<(scripts: [String: [Canned]], hits: [String: Int], tokens: Int, seenAuth: [String])>(([:], [:], 0, []))
    let tokenLifetime: Int
    private let uris = Mutex<[String]>([])
    /// Every request's method and URI (path and query), in order.
    var requests: [String] { uris.withLock { $0 } }

    init(tokenLifetime: Int = 3600) { self.tokenLifetime = tokenLifetime }

    /// Queues replies for `method path`; the last one repeats.
    func script(_ key: String, _ replies: [Canned]) { state.withLock { $0.scripts[key] = replies } }
    func hits(_ key: String) -> Int { state.withLock { $0.hits[key] ?? 0 } }
    var tokenRequests: Int { state.withLock { $0.tokens } }
    var authorizations: [String] { state.withLock { $0.seenAuth } }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
            router.on("**", method: method) { req, _ in await self.answer(req) }
        }
        return router
    }

    func answer(_ req: Request) async -> Response {
        let path = req.uri.path
        if path.hasSuffix("/oauth2/token") || path.hasSuffix("/oauth2/v2.0/token") {
            let n = state.withLock { s -> Int in s.tokens += 1; return s.tokens }
            try? await Task.sleep(for: .milliseconds(50))  // slow enough that concurrent callers overlap
            return json(.ok, "{\"token_type\":\"Bearer\",\"expires_in\":\"\(tokenLifetime)\",\"access_token\":\"t\(n)\"}")
        }
        let key = "\(req.method) \(path)"
        uris.withLock { $0.append("\(req.method) \(req.uri.description)") }
        let canned: Canned? = state.withLock { s in
            s.hits[key, default: 0] += 1
            if let auth = req.headers[.authorization] { s.seenAuth.append(auth) }
            guard var list = s.scripts[key], !list.isEmpty else { return nil }
            let first = list.removeFirst()
            s.scripts[key] = list.isEmpty ? [first] : list
            return first
        }
        guard let canned else { return json(.notFound, #"{"error":{"code":"NotFound","message":"no script for \#(key)"}}"#) }
        if canned.delay > .zero { try? await Task.sleep(for: canned.delay) }
        return json(canned.status, canned.body, canned.headers)
    }

    func json(_ status: HTTPResponse.Status, _ body: String, _ extra: [(String, String)] = []) -> Response {
        var h: HTTPFields = [.contentType: "application/json"]
        for (k, v) in extra { h[HTTPField.Name(k)!] = v }
        return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// Runs `body` with a client pointed at this fake.
    func withClient(retry: RetryPolicy = RetryPolicy(), api: AzureMLConfig.API = .v1,
                    _ body: @escaping @Sendable (HTTPAzureMLClient, String) async throws -> Void) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let base = "http://127.0.0.1:\(client.port!)"
            var s = AzureMLSettings(credential: .servicePrincipal(tenantID: "t", clientID: "c", secret: "s", v2: false),
                                    subscriptionID: "sub", resourceGroup: "rg", workspace: "ws")
            s.authorityURL = base
            s.armURL = base
            s.dataPlaneOverride = base
            s.retry = retry
            s.api = api
            try await body(HTTPAzureMLClient(settings: s), base)
        }
    }
}

@Suite struct FaultInjectionTests {
    static let groups = "GET /subscriptions/sub/resourceGroups"
    static let quick: RetryPolicy = { var p = RetryPolicy(); p.baseDelay = 0.01; p.maxDelay = 0.05; return p }()

    @Test func throttlingIsRetriedAfterRetryAfter() async throws {
        let fake = FakeAzure()
        fake.script(Self.groups, [.init(status: .tooManyRequests, body: #"{"error":{"code":"TooManyRequests","message":"slow down"}}"#, headers: [("Retry-After", "1")]),
                                  .init(status: .ok, body: #"{"value":[{"name":"rg"}]}"#)])
        try await fake.withClient(retry: Self.quick) { api, _ in
            let start = ContinuousClock.now
            let groups = try await api.resourceGroups()
            #expect(groups.count == 1)
            #expect(ContinuousClock.now - start >= .milliseconds(900), "Retry-After: 1 was honoured")
        }
        #expect(fake.hits(Self.groups) == 2)
    }

    @Test func serverErrorsAreRetriedAndOthersAreNot() async throws {
        let fake = FakeAzure()
        fake.script(Self.groups, [.init(status: .serviceUnavailable), .init(status: .badGateway), .init(status: .ok, body: #"{"value":[]}"#)])
        fake.script("GET /subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws",
                    [.init(status: .badRequest, body: #"{"error":{"code":"InvalidThing","message":"bad"}}"#, headers: [("x-ms-request-id", "req-42")])])
        try await fake.withClient(retry: Self.quick) { api, _ in
            let groups = try await api.resourceGroups()
            #expect(groups.isEmpty)
            do {
                _ = try await api.workspace()
                Issue.record("a 400 succeeded")
            } catch let e as AzureMLError {
                #expect(e.code == .badRequest && e.status == 400 && e.serviceCode == "InvalidThing" && e.message == "bad" && e.requestID == "req-42")
            }
        }
        #expect(fake.hits(Self.groups) == 3)
        #expect(fake.hits("GET /subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws") == 1, "400 is never retried")
    }

    @Test func attemptsAreCappedAndTheLastErrorIsThrown() async throws {
        let fake = FakeAzure()
        fake.script(Self.groups, [.init(status: .serviceUnavailable, body: #"{"error":{"code":"Busy","message":"try later"}}"#)])
        var policy = Self.quick
        policy.maxAttempts = 3
        try await fake.withClient(retry: policy) { api, _ in
            await #expect(throws: AzureMLError.self) { _ = try await api.resourceGroups() }
        }
        #expect(fake.hits(Self.groups) == 3)
    }

    @Test func aSlowResponseTimesOutAndIsRetried() async throws {
        let fake = FakeAzure()
        fake.script(Self.groups, [.init(status: .ok, body: #"{"value":[]}"#, delay: .seconds(4)), .init(status: .ok, body: #"{"value":[{"name":"x"}]}"#)])
        var policy = Self.quick
        policy.attemptTimeout = 1
        try await fake.withClient(retry: policy) { api, _ in
            let groups = try await api.resourceGroups()
            #expect(groups.count == 1, "the answer is the retry's, not the slow one's")
        }
        // At least 2: on a stalled machine (CI once took 12 s for this test) the retry can outlast 1 s as well.
        #expect(fake.hits(Self.groups) >= 2)
    }

    @Test func anExpiredTokenIsRefreshedOnceOn401AndConcurrentCallsShareOneTokenRequest() async throws {
        let fake = FakeAzure()
        fake.script(Self.groups, [.init(status: .unauthorized, body: #"{"error":{"code":"ExpiredAuthenticationToken","message":"expired"}}"#),
                                  .init(status: .ok, body: #"{"value":[]}"#)])
        try await fake.withClient { api, _ in
            _ = try await api.resourceGroups()
            #expect(fake.authorizations == ["Bearer t1", "Bearer t2"], "one refresh after the 401")
            #expect(fake.tokenRequests == 2)
        }
        let many = FakeAzure()
        many.script(Self.groups, [.init(status: .ok, body: #"{"value":[]}"#)])
        try await many.withClient { api, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<100 { group.addTask { _ = try await api.resourceGroups() } }
                try await group.waitForAll()
            }
        }
        #expect(many.tokenRequests == 1, "100 concurrent calls, one token request")
        #expect(many.hits(Self.groups) == 100)
    }

    @Test func aTokenNearExpiryIsRefreshedBeforeUse() async throws {
        let fake = FakeAzure(tokenLifetime: 60)  // inside the 5-minute refresh margin
        fake.script(Self.groups, [.init(status: .ok, body: #"{"value":[]}"#)])
        try await fake.withClient { api, _ in
            _ = try await api.resourceGroups()
            _ = try await api.resourceGroups()
        }
        #expect(fake.tokenRequests == 2)
    }

    @Test func longRunningOperationsAndPagination() async throws {
        let fake = FakeAzure()
        let ws = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/new"
        try await fake.withClient(retry: Self.quick) { api, base in
            fake.script("PUT \(ws)", [.init(status: .created, body: #"{"name":"new","properties":{"provisioningState":"Creating"}}"#,
                                            headers: [("Azure-AsyncOperation", "\(base)/ops/1"), ("Retry-After", "0")])])
            fake.script("GET /ops/1", [.init(status: .ok, body: #"{"status":"InProgress"}"#, headers: [("Retry-After", "0")]),
                                       .init(status: .ok, body: #"{"status":"InProgress"}"#, headers: [("Retry-After", "0")]),
                                       .init(status: .ok, body: #"{"status":"Succeeded"}"#)])
            fake.script("GET \(ws)", [.init(status: .ok, body: #"{"name":"new","properties":{"provisioningState":"Succeeded"}}"#)])
            let created = try await api.createOrUpdateWorkspace("new", body: ["location": "x"])
            #expect(created.value(at: "properties.provisioningState")?.string == "Succeeded")
            #expect(fake.hits("GET /ops/1") == 3)

            fake.script("DELETE \(ws)", [.init(status: .accepted, headers: [("Location", "\(base)/loc/1"), ("Retry-After", "0")])])
            fake.script("GET /loc/1", [.init(status: .accepted, headers: [("Retry-After", "0")]), .init(status: .ok)])
            try await api.deleteWorkspace("new")
            #expect(fake.hits("GET /loc/1") == 2)

            fake.script("PUT /ops-fail", [])
            fake.script("PUT \(ws)", [.init(status: .accepted, headers: [("Azure-AsyncOperation", "\(base)/ops/2"), ("Retry-After", "0")])])
            fake.script("GET /ops/2", [.init(status: .ok, body: #"{"status":"Failed","error":{"code":"QuotaExceeded","message":"no quota"}}"#)])
            do {
                _ = try await api.createOrUpdateWorkspace("new", body: ["location": "x"])
                Issue.record("a failed operation succeeded")
            } catch let e as AzureMLError {
                #expect(e.code == .operationFailed && e.serviceCode == "QuotaExceeded")
            }

            fake.script(FaultInjectionTests.groups, [.init(status: .ok, body: "{\"value\":[{\"name\":\"a\"}],\"nextLink\":\"\(base)/page2\"}")])
            fake.script("GET /page2", [.init(status: .ok, body: #"{"value":[{"name":"b"}],"nextLink":null}"#)])
            #expect(try await api.resourceGroups().compactMap { $0["name"]?.string } == ["a", "b"])
        }
    }
}

extension FaultInjectionTests {
    @Test func aStaticTokenIsSentAsIs() async throws {
        let fake = FakeAzure()
        fake.script(Self.groups, [.init(status: .ok, body: #"{"value":[]}"#)])
        let app = Application(router: fake.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            var s = AzureMLSettings(credential: .staticToken("local-token"), subscriptionID: "sub", resourceGroup: "rg", workspace: "ws")
            s.armURL = "http://127.0.0.1:\(client.port!)"
            _ = try await HTTPAzureMLClient(settings: s).resourceGroups()
        }
        #expect(fake.authorizations == ["Bearer local-token"] && fake.tokenRequests == 0)
    }

    @Test func connectionErrorsAreRetriedWithinTheDeadline() async throws {
        // A port nobody listens on: every attempt is a connection error.
        var s = AzureMLSettings(credential: .staticToken("t"), subscriptionID: "sub", resourceGroup: "rg", workspace: "ws")
        s.armURL = "http://127.0.0.1:1"
        s.retry = Self.quick
        s.retry.maxAttempts = 1000
        s.retry.attemptTimeout = 60
        s.retry.deadline = 0.5
        let start = ContinuousClock.now
        do {
            _ = try await HTTPAzureMLClient(settings: s).resourceGroups()
            Issue.record("a closed port answered")
        } catch let e as AzureMLError {
            #expect(e.code == .transport)
        }
        // Without the deadline bound one attempt alone waits the 60 s attempt timeout; with it, the call ends
        // soon after 0.5 s (a loaded machine adds a few seconds of connection-pool latency).
        #expect(ContinuousClock.now - start < .seconds(30), "the overall deadline stops the retries")
    }
}

extension FaultInjectionTests {
    /// `scale_compute` works against either surface: the same PATCH, with the v2 api-version on a v2 workspace.
    @Test func computesUseTheV2APIVersionOnAV2Workspace() async throws {
        let compute = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/gpu"
        for api in [AzureMLConfig.API.v1, .v2] {
            let fake = FakeAzure()
            fake.script("PATCH \(compute)", [.init(status: .ok, body: #"{"properties":{"provisioningState":"Succeeded"}}"#)])
            fake.script("GET \(compute)", [.init(status: .ok, body: #"{"properties":{"provisioningState":"Succeeded"}}"#)])
            try await fake.withClient(retry: Self.quick, api: api) { client, _ in
                _ = try await client.scaleCompute("gpu", maxNodes: 4)
            }
            let sent = fake.requests.filter { $0.contains("/computes/gpu") }
            let version = api == .v2 ? "api-version=2025-12-01" : "api-version=2019-11-01"
            #expect(!sent.isEmpty && sent.allSatisfy { $0.contains(version) }, "\(api): \(sent)")
        }
    }
}

