import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MLHookCore
import NIOCore
import Signing
import Store

/// `/api/v1`: events, jobs and callbacks for operators: list with filters and paging, show, retry, replay.
///
/// Every request needs `Authorization: Bearer <admin.token>`, compared in constant time; a wrong or missing
/// token gets 401. With no admin token configured, everything here answers 404: off, not open.
///
/// Lists answer `{"items": […], "next": "<id>"|null}`; pass `next` back as `before` for the next page.
struct AdminAPI: Sendable {
    let store: any OperatorView
    let live: LiveConfig
    let logger: Logger
    /// Wrong bearer tokens per client address: past 10 a minute, that client gets 429 (the right token too).
    let throttle = ClientThrottle()

    static let defaultLimit = 50
    static let maxLimit = 500

    func addRoutes(to router: Router<some RequestContext>) {
        let api = router.group("/api/v1")
        api.get("/events") { req, ctx in try await self.guarded(req, ctx) { try await self.listEvents(req) } }
        api.get("/events/:id") { req, ctx in try await self.guarded(req, ctx) { try await self.showEvent(ctx.parameters.get("id") ?? "") } }
        api.get("/jobs") { req, ctx in try await self.guarded(req, ctx) { try await self.listJobs(req) } }
        api.get("/jobs/:id") { req, ctx in try await self.guarded(req, ctx) { try await self.showJob(ctx.parameters.get("id") ?? "") } }
        api.post("/jobs/:id/retry") { req, ctx in try await self.guarded(req, ctx) { try await self.retry(ctx.parameters.get("id") ?? "") } }
        api.post("/jobs/:id/cancel") { req, ctx in try await self.guarded(req, ctx) { try await self.cancel(ctx.parameters.get("id") ?? "") } }
        api.get("/callbacks") { req, ctx in try await self.guarded(req, ctx) { try await self.listCallbacks(req) } }
        api.get("/callbacks/:id") { req, ctx in try await self.guarded(req, ctx) { try await self.showCallback(ctx.parameters.get("id") ?? "") } }
        api.post("/callbacks/:id/replay") { req, ctx in try await self.guarded(req, ctx) { try await self.replay(ctx.parameters.get("id") ?? "") } }
    }

    /// 404 when off, 401 without the right bearer token, else the handler's answer.
    func guarded(_ req: Request, _ context: some RequestContext, _ handler: () async throws -> Response) async throws -> Response {
        let client = ClientThrottle.client(context)
        if live.adminToken != nil, let wait = throttle.wait(client, now: Date()) {
            logger.notice("admin API: request refused (too many wrong tokens from this client)", metadata: ["client": .string(client)])
            var r = Self.error(.tooManyRequests, "too_many_requests", "too many wrong tokens from this address; try again in \(wait) s")
            r.headers[.retryAfter] = String(wait)
            return r
        }
        switch Self.authorize(req, token: live.adminToken) {
        case .off: return Self.error(.notFound, "not_found", "the admin API is off: set admin.token in the configuration")
        case .denied(let why):
            throttle.failed(client, now: Date())
            logger.notice("admin API: request refused: \(why)", metadata: ["path": .string(req.uri.path), "client": .string(client)])
            var r = Self.error(.unauthorized, "unauthorized", "send Authorization: Bearer <admin token>")
            r.headers[.wwwAuthenticate] = "Bearer realm=\"mlhook\""
            return r
        case .allowed:
            do { return try await handler() } catch let bad as BadQuery {
                return Self.error(.badRequest, "bad_request", bad.message)
            }
        }
    }

    enum Access { case off, denied(String), allowed }

    /// Whether the request carries the admin token as a bearer token.
    static func authorize(_ req: Request, token: WebhookSecret?) -> Access {
        guard let token else { return .off }
        guard let header = req.headers[.authorization] else { return .denied("no Authorization header") }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return .denied("Authorization is not a bearer token") }
        return ConstantTime.tokenEquals(parts[1], token.text) ? .allowed : .denied("wrong token")
    }

    struct BadQuery: Error { let message: String }

    /// `limit` (1…500, default 50) and `before` from the query string.
    func paging(_ req: Request) throws -> (limit: Int, before: String?) {
        var limit = Self.defaultLimit
        if let text = req.uri.queryParameters.get("limit") {
            guard let n = Int(text), (1...Self.maxLimit).contains(n) else { throw BadQuery(message: "limit must be between 1 and \(Self.maxLimit)") }
            limit = n
        }
        return (limit, req.uri.queryParameters.get("before"))
    }

    func state<T: RawRepresentable & CaseIterable>(_ req: Request, _: T.Type) throws -> T? where T.RawValue == String {
        guard let text = req.uri.queryParameters.get("state") else { return nil }
        guard let s = T(rawValue: text) else {
            throw BadQuery(message: "state must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return s
    }

    func listEvents(_ req: Request) async throws -> Response {
        let (limit, before) = try paging(req)
        let q = req.uri.queryParameters
        let items = try await store.events(EventQuery(limit: limit, source: q.get("source"), kind: q.get("kind"),
                                                      state: try state(req, EventState.self), before: before))
        return try Self.page(items, limit: limit, id: \.id)
    }

    func showEvent(_ id: String) async throws -> Response {
        guard let e = try await store.event(id: id) else { return Self.error(.notFound, "not_found", "no event \(id)") }
        return try Self.encode(e)
    }

    func listJobs(_ req: Request) async throws -> Response {
        let (limit, before) = try paging(req)
        let q = req.uri.queryParameters
        let items = try await store.jobs(JobQuery(limit: limit, state: try state(req, JobState.self), rule: q.get("rule"),
                                                  eventID: q.get("event_id"), before: before))
        return try Self.page(items, limit: limit, id: \.id)
    }

    /// A job with its attempts.
    struct JobDetail: Codable {
        let job: JobRecord
        let attempts: [JobAttempt]
    }

    func showJob(_ id: String) async throws -> Response {
        guard let j = try await store.job(id: id) else { return Self.error(.notFound, "not_found", "no job \(id)") }
        return try Self.encode(JobDetail(job: j, attempts: try await store.attempts(jobID: id)))
    }

    func retry(_ id: String) async throws -> Response {
        guard let j = try await store.job(id: id) else { return Self.error(.notFound, "not_found", "no job \(id)") }
        guard try await store.retryJob(id: id) else {
            return Self.error(.conflict, "not_retryable", "job \(id) is \(j.state.rawValue); only failed or dead jobs are retried")
        }
        logger.notice("admin: job queued again", metadata: ["job_id": .string(id), "event_id": .string(j.eventID)])
        return try Self.encode(["id": id, "state": "queued"])
    }

    func cancel(_ id: String) async throws -> Response {
        let outcome = try await store.cancelJob(id: id, reason: JobCancellation.operatorReason)
        switch outcome {
        case .notFound: return Self.error(.notFound, "not_found", "no job \(id)")
        case .ended(let state): return Self.error(.conflict, "not_cancelable", "job \(id) is \(state.rawValue): nothing to cancel")
        case .canceled, .requested:
            logger.notice("admin: job canceled", metadata: ["job_id": .string(id), "outcome": .string("\(outcome)")])
            return try Self.encode(outcome)
        }
    }

    func listCallbacks(_ req: Request) async throws -> Response {
        let (limit, before) = try paging(req)
        let q = req.uri.queryParameters
        let items = try await store.callbacks(CallbackQuery(limit: limit, state: try state(req, CallbackState.self), kind: q.get("kind"),
                                                            eventID: q.get("event_id"), jobID: q.get("job_id"), before: before))
        return try Self.page(items, limit: limit, id: \.id)
    }

    func showCallback(_ id: String) async throws -> Response {
        guard let c = try await store.callback(id: id) else { return Self.error(.notFound, "not_found", "no callback \(id)") }
        return try Self.encode(c)
    }

    func replay(_ id: String) async throws -> Response {
        guard try await store.replayCallback(id: id) else { return Self.error(.notFound, "not_found", "no callback \(id)") }
        logger.notice("admin: callback queued for delivery again", metadata: ["callback_id": .string(id)])
        return try Self.encode(["id": id, "state": "pending"])
    }

    // MARK: JSON

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    struct Page<T: Encodable>: Encodable {
        let items: [T]
        let next: String?
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(items, forKey: .items)
            try c.encode(next, forKey: .next)  // null on the last page
        }
        enum CodingKeys: String, CodingKey { case items, next }
    }

    static func page<T: Encodable>(_ items: [T], limit: Int, id: KeyPath<T, String>) throws -> Response {
        try encode(Page(items: items, next: items.count == limit ? items.last?[keyPath: id] : nil))
    }

    static func encode(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: Array(try encoder.encode(value)))))
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        (try? encode(["error": code, "message": message], status: status)) ?? Response(status: status)
    }
}
