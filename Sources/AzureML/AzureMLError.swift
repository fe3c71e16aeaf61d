import Foundation

/// A failed Azure ML call: what kind of failure, the HTTP status, the service's own code and message, and the
/// request id to quote to support.
public struct AzureMLError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure; a struct over a private enum so kinds can grow without breaking callers.
    public struct Code: Sendable, Equatable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable { case unauthorized, notFound, conflict, badRequest, throttled, server, transport, timeout, invalidResponse, operationFailed }
        private let base: Base
        /// 401/403: the credentials or the token were refused.
        public static let unauthorized = Code(base: .unauthorized)
        /// 404.
        public static let notFound = Code(base: .notFound)
        /// 409.
        public static let conflict = Code(base: .conflict)
        /// Another 4xx: the request itself is wrong.
        public static let badRequest = Code(base: .badRequest)
        /// 429 (retried, honouring Retry-After).
        public static let throttled = Code(base: .throttled)
        /// 5xx (retried).
        public static let server = Code(base: .server)
        /// No answer: connection refused or reset (retried).
        public static let transport = Code(base: .transport)
        /// An attempt ran past its timeout (retried).
        public static let timeout = Code(base: .timeout)
        /// An answer that is not what the API documents.
        public static let invalidResponse = Code(base: .invalidResponse)
        /// A long-running operation ended Failed or Canceled.
        public static let operationFailed = Code(base: .operationFailed)
        public var description: String { base.rawValue }
    }

    /// What kind of failure.
    public let code: Code
    /// The HTTP status, when there was a response.
    public let status: Int?
    /// The service's error code (`MissingApiVersionParameter`, `UserError`, `invalid_client`, …).
    public let serviceCode: String?
    /// The service's message.
    public let message: String
    /// `x-ms-request-id` / `x-ms-correlation-request-id` / `x-request-id`, when sent.
    public let requestID: String?

    public init(code: Code, status: Int? = nil, serviceCode: String? = nil, message: String, requestID: String? = nil) {
        self.code = code
        self.status = status
        self.serviceCode = serviceCode
        self.message = message
        self.requestID = requestID
    }

    /// Whether a retry may succeed: throttling, 408/5xx and connection failures.
    public var isRetryable: Bool {
        guard let status else { return code == .transport }
        return [408, 429, 500, 502, 503, 504].contains(status)
    }

    public var description: String {
        var s = "Azure ML \(code)"
        if let status { s += " (HTTP \(status)" + (serviceCode.map { " \($0)" } ?? "") + ")" }
        s += ": \(message)"
        if let requestID { s += " [request \(requestID)]" }
        return s
    }

    static func code(forStatus status: Int) -> Code {
        switch status {
        case 401, 403: .unauthorized
        case 404: .notFound
        case 409: .conflict
        case 408: .timeout
        case 429: .throttled
        case 400..<500: .badRequest
        default: .server
        }
    }
}
