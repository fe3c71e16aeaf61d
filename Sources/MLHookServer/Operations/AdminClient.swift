import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Signing
import Store

/// The admin API (`/api/v1`) of a running mlhook, seen as an `OperatorView`: what `mlhook events|jobs|callbacks
/// --server URL` use instead of opening the store file.
public struct AdminClient: OperatorView {
    public let baseURL: String
    let token: WebhookSecret
    let http: HTTPClient

    /// An answer other than the one expected, with the server's message.
    public struct Failure: Error, CustomStringConvertible {
        public let status: Int
        public let description: String
    }

    public init(baseURL: String, token: WebhookSecret, http: HTTPClient = OutboundHTTP.client) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.http = http
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()

    /// Sends a request; nil for a 404 when `missingIsNil`.
    func call(_ method: HTTPMethod, _ path: String, query: [(String, String?)] = [], missingIsNil: Bool = false) async throws -> [UInt8]? {
        var components = URLComponents()
        components.queryItems = query.compactMap { k, v in v.map { URLQueryItem(name: k, value: $0) } }
        let q = components.percentEncodedQuery.map { "?" + $0 } ?? ""
        var request = HTTPClientRequest(url: baseURL + "/api/v1" + path + q)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token.text)")
        let response: HTTPClientResponse
        let body: [UInt8]
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            body = Array((try await response.body.collect(upTo: 64 << 20)).readableBytesView)
        } catch {
            throw Failure(status: 0, description: "cannot reach the admin API at \(baseURL): \(OutboundHTTP.describe(error))")
        }
        let status = Int(response.status.code)
        if status == 404 && missingIsNil { return nil }
        guard (200..<300).contains(status) else {
            let message = (try? JSONDecoder().decode([String: String].self, from: Data(body)))?["message"] ?? String(decoding: body.prefix(300), as: UTF8.self)
            throw Failure(status: status, description: "\(baseURL) answered \(status): \(message)")
        }
        return body
    }

    struct Page<T: Decodable>: Decodable {
        let items: [T]
        let next: String?
    }

    /// Follows `next` until `limit` items (or all, for nil) are read.
    func list<T: Decodable>(_ path: String, limit: Int?, filters: [(String, String?)], before start: String?) async throws -> [T] {
        var out: [T] = []
        var before = start
        repeat {
            let want = min(AdminAPI.maxLimit, limit.map { $0 - out.count } ?? AdminAPI.maxLimit)
            let body = try await call(.GET, path, query: filters + [("limit", String(want)), ("before", before)]) ?? []
            let page = try Self.decoder.decode(Page<T>.self, from: Data(body))
            out += page.items
            before = page.next
        } while before != nil && (limit.map { out.count < $0 } ?? true)
        return out
    }

    public func events(_ q: EventQuery) async throws -> [EventSummary] {
        try await list("/events", limit: q.limit, filters: [("source", q.source), ("kind", q.kind), ("state", q.state?.rawValue)], before: q.before)
    }

    public func event(id: String) async throws -> StoredEvent? {
        guard let body = try await call(.GET, "/events/\(escape(id))", missingIsNil: true) else { return nil }
        return try Self.decoder.decode(StoredEvent.self, from: Data(body))
    }

    public func jobs(_ q: JobQuery) async throws -> [JobRecord] {
        try await list("/jobs", limit: q.limit, filters: [("state", q.state?.rawValue), ("rule", q.rule), ("event_id", q.eventID)], before: q.before)
    }

    public func job(id: String) async throws -> JobRecord? {
        guard let body = try await call(.GET, "/jobs/\(escape(id))", missingIsNil: true) else { return nil }
        return try Self.decoder.decode(AdminAPI.JobDetail.self, from: Data(body)).job
    }

    public func attempts(jobID: String) async throws -> [JobAttempt] {
        guard let body = try await call(.GET, "/jobs/\(escape(jobID))", missingIsNil: true) else { return [] }
        return try Self.decoder.decode(AdminAPI.JobDetail.self, from: Data(body)).attempts
    }

    public func cancelJob(id: String, reason: String) async throws -> JobCancellation {
        do {
            guard let body = try await call(.POST, "/jobs/\(escape(id))/cancel", missingIsNil: true) else { return .notFound }
            return try Self.decoder.decode(JobCancellation.self, from: Data(body))
        } catch let f as Failure where f.status == 409 {
            // The server's answer names the state it found.
            let state = JobState.allCases.first { f.description.contains(" is \($0.rawValue):") } ?? .failed
            return .ended(state)
        }
    }

    public func retryJob(id: String) async throws -> Bool {
        do { return try await call(.POST, "/jobs/\(escape(id))/retry", missingIsNil: true) != nil } catch let f as Failure where f.status == 409 {
            return false
        }
    }

    public func callbacks(_ q: CallbackQuery) async throws -> [CallbackRecord] {
        try await list("/callbacks", limit: q.limit, filters: [("state", q.state?.rawValue), ("kind", q.kind), ("event_id", q.eventID),
                                                               ("job_id", q.jobID)], before: q.before)
    }

    public func callback(id: String) async throws -> CallbackRecord? {
        guard let body = try await call(.GET, "/callbacks/\(escape(id))", missingIsNil: true) else { return nil }
        return try Self.decoder.decode(CallbackRecord.self, from: Data(body))
    }

    public func replayCallback(id: String) async throws -> Bool {
        try await call(.POST, "/callbacks/\(escape(id))/replay", missingIsNil: true) != nil
    }

    func escape(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "_-"))) ?? id
    }
}
