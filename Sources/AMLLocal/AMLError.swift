import Foundation
import HTTPTypes
import MLHookCore

/// The API surface a request belongs to; each has its own error envelope.
enum Plane: Sendable {
    case aad, arm, history, modelManagement, blob
}

/// An error the local server answers with, rendered in the envelope of the request's plane.
struct AMLError: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    /// The innerError code (history plane), such as NotFoundError.
    let inner: String?

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, inner: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
    }

    static func validation(_ message: String) -> AMLError { AMLError(.badRequest, "UserError", message, inner: "BadArgument") }
    static func notFound(_ what: String) -> AMLError { AMLError(.notFound, "UserError", "\(what) was not found.", inner: "NotFoundError") }

    /// The body for a plane.
    func body(for plane: Plane) -> String {
        switch plane {
        case .aad:
            var j = JSONText()
            j.add("error", code)
            j.add("error_description", message)
            return j.text
        case .arm:
            var inner = JSONText()
            inner.add("code", code)
            inner.add("message", message)
            return "{\"error\":\(inner.text)}"
        case .history:
            var inner = JSONText()
            inner.add("code", code)
            inner.add("message", message)
            let innerError = self.inner.map { c -> String in var j = JSONText(); j.add("code", c); return j.text } ?? "null"
            let e = String(inner.text.dropLast()) + ",\"innerError\":\(innerError)}"
            return "{\"error\":\(e),\"correlation\":{}}"
        case .blob:
            return "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>\(AMLLocalServer.xml(code))</Code><Message>\(AMLLocalServer.xml(message))</Message></Error>"
        case .modelManagement:
            var j = JSONText()
            j.add("code", status == .notFound ? "NotFound" : code)
            j.add("statusCode", Int(status.code))
            j.add("message", message)
            return String(j.text.dropLast()) + ",\"correlation\":{}}"
        }
    }
}

/// Paging values from a request: checked before use, so a negative or absurd one is a 400, never a trap.
extension AMLLocalServer {
    /// A paging offset (continuation token, `$skiptoken`, `offset`): digits only, at most 10^9; absent is 0.
    static func pagingOffset(_ raw: String?, name: String) throws(AMLError) -> Int {
        guard let raw else { return 0 }
        guard (1...10).contains(raw.utf8.count), raw.utf8.allSatisfy({ (48...57).contains($0) }), let n = Int(raw), n <= 1_000_000_000 else {
            throw AMLError.validation("\(name) must be a whole number from 0 to 1000000000, got \"\(raw.prefix(40))\"")
        }
        return n
    }

    /// A page size (`count`): digits only, taken as 1 to 1000 (larger asks get 1000); absent is 100.
    static func pageSize(_ raw: String?, name: String) throws(AMLError) -> Int {
        guard let raw else { return 100 }
        guard !raw.isEmpty, raw.utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw AMLError.validation("\(name) must be a whole number, got \"\(raw.prefix(40))\"")
        }
        return max(1, min(Int(raw.prefix(5)) ?? 1000, 1000))
    }
}
