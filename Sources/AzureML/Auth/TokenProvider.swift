import AsyncHTTPClient
import Foundation
import MLHookCore
import NIOCore
import NIOHTTP1

/// Service-principal tokens, cached and refreshed before they expire.
///
/// Concurrent callers share one request (single flight): a hundred calls that find no valid token cause one
/// token request, and all of them get its answer.
actor TokenProvider {
    private let settings: AzureMLSettings
    private let http: HTTPClient
    private var cached: (token: String, expires: Date)?
    private var inflight: Task<(String, Date), any Error>?
    /// Refresh this long before expiry.
    private let margin: TimeInterval = 300
    /// How many token requests were sent (for tests and metrics).
    private(set) var requests = 0

    init(settings: AzureMLSettings, http: HTTPClient) {
        self.settings = settings
        self.http = http
    }

    /// A valid bearer token.
    func token() async throws -> String {
        if case .staticToken(let t) = settings.credential { return t }
        if let cached, cached.expires.timeIntervalSinceNow > margin { return cached.token }
        if let inflight { return try await inflight.value.0 }
        let task = Task { try await self.fetch() }
        inflight = task
        defer { inflight = nil }
        let fresh = try await task.value
        cached = fresh
        return fresh.0
    }

    /// Drops the cached token (after a 401), so the next call fetches a new one.
    func invalidate(_ token: String) {
        if cached?.token == token { cached = nil }
    }

    private func fetch() async throws -> (String, Date) {
        guard case .servicePrincipal(let tenant, let client, let secret, let v2) = settings.credential else {
            throw AzureMLError(code: .unauthorized, message: "no credential")
        }
        requests += 1
        var form = "grant_type=client_credentials&client_id=\(FormURLEncoded.escape(client))&client_secret=\(FormURLEncoded.escape(secret))"
        form += v2 ? "&scope=" + FormURLEncoded.escape(settings.resource + ".default") : "&resource=" + FormURLEncoded.escape(settings.resource)
        var request = HTTPClientRequest(url: "\(settings.authorityURL)/\(tenant)/oauth2/\(v2 ? "v2.0/" : "")token")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: form))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(30))
        } catch {
            throw AzureMLError(code: .transport, message: "token request to \(settings.authorityURL) failed: \(error)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let json = JSONValue(json: Array(body.readableBytesView)) ?? .null
        guard response.status == .ok, let token = json["access_token"]?.string else {
            throw AzureMLError(code: .unauthorized, status: Int(response.status.code), serviceCode: json["error"]?.string,
                               message: json["error_description"]?.string ?? "the token request was refused")
        }
        // v1 sends numbers as strings, v2 as integers.
        let lifetime = json["expires_in"]?.int ?? json["expires_in"]?.string.flatMap(Int.init) ?? 3600
        return (token, Date().addingTimeInterval(TimeInterval(lifetime)))
    }
}
