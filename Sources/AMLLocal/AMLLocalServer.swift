import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MLHookCore
import NIOCore
import Signing

/// The local Azure-ML-compatible server: AAD tokens, ARM, discovery, run history, execution and model
/// management on one base URL with no path prefix, as shared/azureml-rest.md describes.
///
/// Routing is done here over percent-decoded path segments, so trailing slashes, encoded ids (`name%3A1`)
/// and the casing differences between the article and the SDK are handled in one place.
public final class AMLLocalServer: Sendable {
    let store: AMLLocalStore
    let tokens: TokenIssuer
    let executor: RunExecutor
    let sandbox: RunSandbox
    /// Request bodies being received, in bytes, over every request at once.
    let inflight = BodyBudget(limit: 512 << 20)
    let settings: AMLLocalSettings
    let logger: Logger

    init(store: AMLLocalStore, tokens: TokenIssuer, executor: RunExecutor, sandbox: RunSandbox, settings: AMLLocalSettings, logger: Logger) {
        self.store = store
        self.tokens = tokens
        self.executor = executor
        self.sandbox = sandbox
        self.settings = settings
        self.logger = logger
    }

    /// One request, parsed.
    struct Call {
        let method: HTTPRequest.Method
        let segments: [String]
        let query: [String: String]
        let headers: HTTPFields
        let body: [UInt8]
        /// A blob or block upload's body, received into a file instead of `body`.
        var spooled: SpooledBody? = nil
        /// The base URL this request came in on (`http://…` or, on the TLS listener, `https://…`).
        var base: String

        /// Segment `i` lowercased, or "".
        func lower(_ i: Int) -> String { i < segments.count ? segments[i].lowercased() : "" }

        func json() throws(AMLError) -> JSONValue {
            guard !body.isEmpty else { return .object([:]) }
            guard let v = JSONValue(json: body) else { throw AMLError.validation("the request body is not valid JSON") }
            return v
        }
    }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.on("**", method: .get) { req, ctx in await self.handle(req, ctx) }
        router.on("**", method: .post) { req, ctx in await self.handle(req, ctx) }
        router.on("**", method: .put) { req, ctx in await self.handle(req, ctx) }
        router.on("**", method: .patch) { req, ctx in await self.handle(req, ctx) }
        router.on("**", method: .delete) { req, ctx in await self.handle(req, ctx) }
        router.on("**", method: .head) { req, ctx in await self.handle(req, ctx) }
    }

    func handle(_ request: Request, _ context: BasicRequestContext) async -> Response {
        let path = request.uri.path
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map {
            String($0).removingPercentEncoding ?? String($0)
        }
        var query: [String: String] = [:]
        for (k, v) in request.uri.queryParameters { query[(String(k).removingPercentEncoding ?? String(k)).lowercased()] = String(v).removingPercentEncoding ?? String(v) }
        let head = Call(method: request.method, segments: segments, query: query, headers: request.headers, body: [],
                        base: settings.base(forAuthority: request.head.authority))
        // Authenticated before a byte of the body is read: a caller with no valid token, SAS or scoring key gets
        // at most a token request's worth (64 KiB) read, and a larger body is not read at all (the route then
        // refuses the credential). Before, anyone could make the server buffer 256 MiB per request, with no overall
        // cap (16 such uploads took it to 4.6 GB and stalled /hooks beside it).
        let trusted = preAuthenticated(head)
        let allowance = trusted ? settings.maxUploadBytes : Self.unauthenticatedBodyBytes
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        var body: [UInt8] = []
        var spooled: SpooledBody?
        defer { spooled?.discard() }
        if trusted && Self.uploadsToDisk(head) {
            // A blob or block upload goes to a file as it arrives: it takes disk, not memory (and not the budget).
            guard (declared ?? 0) <= allowance else { return tooLarge(allowance) }
            do {
                spooled = try await SpooledBody.receive(request.body, into: incomingDirectory, limit: allowance)
            } catch SpooledBody.Failure.tooLarge {
                return tooLarge(allowance)
            } catch {
                logger.error("aml-local: cannot receive an upload: \(error)")
                return respond(AMLError(.internalServerError, "InternalError", "The upload could not be stored."), .blob)
            }
        } else if declared != 0 && !(!trusted && (declared ?? 0) > allowance) {
            // Every body read at once counts against one budget: past it, 503 and the body is not read.
            let reserve = min(declared ?? allowance, allowance)
            guard inflight.reserve(reserve) else {
                var r = respond(AMLError(.serviceUnavailable, "ServerBusy", "Too many request bodies are being received; retry shortly."), .arm)
                r.headers[.retryAfter] = "1"
                return r
            }
            defer { inflight.release(reserve) }
            do {
                body = Array(try await request.body.collect(upTo: reserve).readableBytesView)
            } catch {
                return tooLarge(allowance)
            }
        }
        var call = Call(method: head.method, segments: head.segments, query: head.query, headers: head.headers, body: body, base: head.base)
        call.spooled = spooled
        let plane = Self.plane(of: call)
        do {
            return try await route(call, plane: plane)
        } catch {
            logger.notice("aml-local: \(request.method) \(path) -> \(error.status.code) \(error.code): \(error.message)")
            return respond(error, plane)
        }
    }

    func tooLarge(_ allowance: Int) -> Response {
        respond(AMLError(.contentTooLarge, "RequestTooLarge", "The request body exceeds \(allowance) bytes."), .arm)
    }

    /// Blob and block uploads (`PUT /blob/{account}/{container}/{name}[?comp=block]`): received into a file.
    static func uploadsToDisk(_ call: Call) -> Bool {
        call.method == .put && call.lower(0) == "blob" && call.segments.count >= 4 && (call.query["comp"] == nil || call.query["comp"] == "block")
    }

    /// Where uploads are received before they are moved into place: beside `blobs`, on the same file system.
    var incomingDirectory: URL { URL(fileURLWithPath: settings.dataDirectory).appendingPathComponent("incoming") }

    /// What a caller without credentials may send: a token request's form.
    static let unauthenticatedBodyBytes = 64 << 10

    /// Whether the request carries a credential that lets it send a large body: a valid bearer token, a valid SAS
    /// on a blob URL, or a valid key on a scoring URL. Checked on the head alone.
    func preAuthenticated(_ call: Call) -> Bool {
        if let header = call.headers[.authorization], header.lowercased().hasPrefix("bearer "),
           tokens.problem(with: String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces), now: settings.now()) == nil {
            return true
        }
        switch call.lower(0) {
        case "blob" where call.segments.count >= 3:
            return (try? checkSAS(call, account: call.segments[1], container: call.segments[2])) != nil
        case "score" where call.segments.count == 2:
            return scoringCredentialMatches(call)
        default:
            return false
        }
    }

    static func plane(of call: Call) -> Plane {
        switch call.lower(0) {
        case "history", "execution": return .history
        case "modelmanagement", "api": return .modelManagement
        case "blob": return .blob
        default: return call.lower(1) == "oauth2" ? .aad : .arm
        }
    }

    func route(_ call: Call, plane: Plane) async throws(AMLError) -> Response {
        // AAD v1: /{tenant}/oauth2/token ; v2: /{tenant}/oauth2/v2.0/token
        if call.lower(1) == "oauth2" && call.method == .post {
            if call.segments.count == 3 && call.lower(2) == "token" { return try token(call, v2: false) }
            if call.segments.count == 4 && call.lower(2) == "v2.0" && call.lower(3) == "token" { return try token(call, v2: true) }
        }
        // Discovery needs no token (the SDK calls it with a bare GET).
        if call.method == .get && call.segments.last?.lowercased() == "discovery" { return discovery(base: call.base) }
        if call.method == .get && call.lower(0) == "metadata" && call.lower(1) == "endpoints" { return cloudMetadata(base: call.base) }
        if call.lower(0) == "blob" { return try blob(call) }
        if call.lower(0) == "logs" { return try logFile(call) }
        if call.lower(0) == "studio" { return try studioPage(call) }
        if call.lower(0) == "score" { return try await score(call) }
        try authenticate(call)
        switch call.lower(0) {
        case "subscriptions", "operations":
            guard call.query["api-version"] != nil else {
                throw AMLError(.badRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
            }
            return try arm(call)
        case "history", "execution":
            guard call.lower(1) == "v1.0", let ws = try workspaceScope(call, from: 2) else { throw AMLError.notFound("The resource") }
            return try await history(call, ws: ws.scope, rest: Array(call.segments[ws.next...]), execution: call.lower(0) == "execution")
        case "modelmanagement", "api":
            let from = call.lower(0) == "api" ? 1 : 2
            guard call.lower(0) == "api" || call.lower(1) == "v1.0", let ws = try workspaceScope(call, from: from) else {
                throw AMLError.notFound("The resource")
            }
            return try models(call, ws: ws.scope, rest: Array(call.segments[ws.next...]))
        default:
            throw AMLError(.notFound, "NotFound", "No route for \(call.method) /\(call.segments.joined(separator: "/")).")
        }
    }

    /// `subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.MachineLearningServices/workspaces/{w}` at `from`.
    func workspaceScope(_ call: Call, from i: Int) throws(AMLError) -> (scope: String, next: Int)? {
        guard call.segments.count >= i + 8, call.lower(i) == "subscriptions", call.lower(i + 2) == "resourcegroups",
              call.lower(i + 4) == "providers", call.lower(i + 5) == "microsoft.machinelearningservices",
              call.lower(i + 6) == "workspaces" else { return nil }
        let scope = Self.workspaceKey(call.segments[i + 1], call.segments[i + 3], call.segments[i + 7])
        guard try guardStore({ try store.get("workspace", Self.groupKey(call.segments[i + 1], call.segments[i + 3]), call.segments[i + 7]) }) != nil else {
            throw AMLError.notFound("Workspace \(call.segments[i + 7])")
        }
        return (scope, i + 8)
    }

    static func groupKey(_ sub: String, _ rg: String) -> String { "\(sub)/\(rg)".lowercased() }
    static func workspaceKey(_ sub: String, _ rg: String, _ ws: String) -> String { "\(sub)/\(rg)/\(ws)".lowercased() }

    func authenticate(_ call: Call) throws(AMLError) {
        guard let header = call.headers[.authorization] else {
            throw AMLError(.unauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        }
        guard header.lowercased().hasPrefix("bearer ") else {
            throw AMLError(.unauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header must be 'Bearer <token>'.")
        }
        if let problem = tokens.problem(with: String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces), now: settings.now()) {
            throw AMLError(.unauthorized, "AuthenticationFailed", "Authentication failed. \(problem)")
        }
    }

    /// The client-credentials grant (AAD v1 with `resource`, v2 with `scope`).
    func token(_ call: Call, v2: Bool) throws(AMLError) -> Response {
        let form = (try? FormURLEncoded.dictionary(String(decoding: call.body, as: UTF8.self))) ?? [:]
        guard form["grant_type"] == "client_credentials" else {
            throw AMLError(.badRequest, "unsupported_grant_type", "AADSTS70003: grant_type must be client_credentials.")
        }
        guard let clientID = form["client_id"], let secret = form["client_secret"],
              let principal = try guardStore({ try store.get("principal", call.segments[0].lowercased(), clientID) }),
              let stored = principal["secretSHA256"]?.string,
              ConstantTime.equals(Digest.sha256Hex(Array(secret.utf8)).utf8.map { $0 }, Array(stored.utf8)) else {
            throw AMLError(.unauthorized, "invalid_client",
                           "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '\(form["client_id"] ?? "")'.")
        }
        let (token, expiry) = tokens.issue(clientID: clientID, now: settings.now())
        let now = Int(settings.now().timeIntervalSince1970)
        var j = JSONText()
        j.add("token_type", "Bearer")
        if v2 {
            j.add("expires_in", expiry - now)
            j.add("ext_expires_in", expiry - now)
        } else {
            // AAD v1 sends its numbers as strings.
            j.add("expires_in", String(expiry - now))
            j.add("ext_expires_in", String(expiry - now))
            j.add("expires_on", String(expiry))
            j.add("not_before", String(now))
            j.add("resource", form["resource"] ?? "https://management.azure.com/")
        }
        j.add("access_token", token)
        return Self.json(.ok, j.text)
    }

    /// Every key the article and the SDK look up, each pointing here.
    func discovery(base: String) -> Response {
        var j = JSONText()
        for key in ["api", "catalog", "experimentation", "gallery", "history", "hyperdrive", "labeling", "modelmanagement",
                    "pipelines", "studiocoreservices", "studio"] {
            j.add(key, base)
        }
        return Self.json(.ok, j.text)
    }

    func respond(_ error: AMLError, _ plane: Plane) -> Response {
        if plane == .blob {
            return Self.raw(error.status, Data(error.body(for: plane).utf8), headers: [("Content-Type", "application/xml"), ("x-ms-error-code", error.code)])
        }
        return Self.json(error.status, error.body(for: plane))
    }

    /// A response with `data` as its body and `extra` as its headers.
    static func raw(_ status: HTTPResponse.Status, _ data: Data, headers extra: [(String, String)]) -> Response {
        var headers: HTTPFields = [:]
        for (k, v) in extra { if let n = HTTPField.Name(k) { headers[n] = v } }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ status: HTTPResponse.Status, _ text: String, headers extra: [(String, String)] = []) -> Response {
        raw(status, Data(text.utf8), headers: [("Content-Type", "application/json; charset=utf-8")] + extra)
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue, headers: [(String, String)] = []) -> Response {
        json(status, value.text, headers: headers)
    }

    /// How times are written in run records: UTC with fractional seconds and a `Z`, as Azure ML writes them.
    static let timeStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    /// Records written before the zone was added (read as UTC).
    static let zonelessTimeStyle = Date.ISO8601FormatStyle().year().month().day().time(includingFractionalSeconds: true)
    static func now() -> String { Date().formatted(timeStyle) }
    static func parseTime(_ text: String) -> Date? { (try? timeStyle.parse(text)) ?? (try? zonelessTimeStyle.parse(text)) }
}
