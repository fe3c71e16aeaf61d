import AsyncHTTPClient
import Foundation
import Logging
import MLHookCore
import NIOCore
import NIOHTTP1

/// One HTTP exchange with Azure ML, with the retry policy: 408/429/500/502/503/504 and connection errors
/// are retried with exponential backoff and full jitter, honouring `Retry-After`, up to `maxAttempts` and
/// within `deadline`; a 401 refreshes the token once and retries. Nothing else is retried.
struct AzureMLTransport: Sendable {
    let http: HTTPClient
    let tokens: TokenProvider
    let policy: RetryPolicy
    let logger: Logger

    /// A response.
    struct Reply: Sendable {
        let status: Int
        let headers: HTTPHeaders
        let body: [UInt8]
        var json: JSONValue { JSONValue(json: body) ?? .null }
        func header(_ name: String) -> String? { headers.first(name: name) }
    }

    /// The body of a request.
    enum Body: Sendable {
        case none
        case json(JSONValue)
        case raw([UInt8], contentType: String)
    }

    /// Sends a request and returns a 2xx reply, or throws `AzureMLError`.
    /// - Parameters:
    ///   - accept: Non-2xx statuses to return instead of throwing (404/204 for deletes, 202 for polling).
    ///   - authenticate: Whether to send the bearer token (discovery and scoring do their own auth).
    func send(_ method: HTTPMethod, _ url: String, body: Body = .none, headers extra: [(String, String)] = [],
              authenticate: Bool = true, accept: Set<Int> = []) async throws -> Reply {
        let start = Date()
        var attempt = 0
        var refreshed = false
        /// The last attempt's failure: what the caller hears when the deadline ends the retries, rather than a
        /// bare timeout (a refused connection says so).
        var lastFailure: AzureMLError?
        while true {
            attempt += 1
            var request = HTTPClientRequest(url: url)
            request.method = method
            var token: String?
            if authenticate {
                token = try await tokens.token()
                request.headers.add(name: "Authorization", value: "Bearer \(token!)")
            }
            request.headers.add(name: "x-ms-client-request-id", value: UUID().uuidString.lowercased())
            for (k, v) in extra { request.headers.add(name: k, value: v) }
            switch body {
            case .none: break
            case .json(let v):
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: v.text))
            case .raw(let bytes, let type):
                request.headers.add(name: "Content-Type", value: type)
                request.body = .bytes(ByteBuffer(bytes: bytes))
            }
            var failure: AzureMLError
            var retryAfter: TimeInterval?
            do {
                // An attempt never outlives the overall deadline (AHC retries connecting until its own timeout).
                let remaining = policy.deadline - Date().timeIntervalSince(start)
                guard remaining > 0 else {
                    throw lastFailure ?? AzureMLError(code: .timeout, message: "\(method) \(url): no time left within the \(Int(policy.deadline)) s deadline")
                }
                let timeout = min(policy.attemptTimeout, remaining)
                let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
                let bytes = Array(try await response.body.collect(upTo: 256 << 20).readableBytesView)
                let reply = Reply(status: Int(response.status.code), headers: response.headers, body: bytes)
                if (200..<300).contains(reply.status) || accept.contains(reply.status) { return reply }
                if reply.status == 401, authenticate, !refreshed, let token {
                    // A revoked or rotated token: one refresh, one retry.
                    await tokens.invalidate(token)
                    refreshed = true
                    attempt -= 1
                    continue
                }
                failure = Self.error(reply)
                retryAfter = reply.header("Retry-After").flatMap(Self.retryAfter)
            } catch let e as AzureMLError {
                throw e
            } catch {
                failure = AzureMLError(code: .transport, message: "\(method) \(url) failed: \(error)")
            }
            let elapsed = Date().timeIntervalSince(start)
            guard failure.isRetryable, attempt < policy.maxAttempts, elapsed < policy.deadline else { throw failure }
            lastFailure = failure
            let backoff = Double.random(in: 0...min(policy.maxDelay, policy.baseDelay * pow(2, Double(attempt - 1))))
            let delay = min(max(backoff, retryAfter ?? 0), max(0, policy.deadline - elapsed))
            logger.notice("Azure ML call will be retried", metadata: [
                "method": .string("\(method)"), "status": .string(failure.status.map(String.init) ?? "-"),
                "attempt": .stringConvertible(attempt), "delay_s": .string(String(format: "%.2f", delay)),
            ])
            try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
        }
    }

    /// `Retry-After` in seconds, or as an HTTP date.
    static func retryAfter(_ value: String) -> TimeInterval? {
        if let s = Double(value.trimmingCharacters(in: .whitespaces)) { return max(0, s) }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }

    /// The typed error for a non-2xx reply, reading each plane's envelope.
    static func error(_ reply: Reply) -> AzureMLError {
        let j = reply.json
        let serviceCode = j.value(at: "error.code")?.string ?? j["code"]?.string ?? j["error"]?.string
        let message = j.value(at: "error.message")?.string ?? j["message"]?.string ?? j["error_description"]?.string
            ?? String(decoding: reply.body.prefix(300), as: UTF8.self)
        let requestID = reply.header("x-ms-request-id") ?? reply.header("x-ms-correlation-request-id") ?? reply.header("x-request-id")
        return AzureMLError(code: AzureMLError.code(forStatus: reply.status), status: reply.status, serviceCode: serviceCode,
                            message: message, requestID: requestID)
    }
}
