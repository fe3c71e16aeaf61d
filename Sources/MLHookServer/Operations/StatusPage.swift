import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MLHookCore
import NIOCore
import Signing
import Store
import Synchronization

/// `/ui`: a server-rendered status page (plain HTML, no JavaScript) that refreshes itself: queue depths,
/// recent events with why they did or did not match, jobs with their attempts and run links, and
/// dead-lettered callbacks with a replay button.
///
/// Off (404) without `admin.token`. A browser signs in once with the token at `/ui/login` and gets a session
/// cookie (HttpOnly, SameSite=Strict, 12 h) that is an HMAC under the token, so rotating the token ends every
/// session. Buttons POST a form carrying a CSRF token bound to the session; a cross-site Origin is refused.
/// `Authorization: Bearer <token>` works too, for scripts.
struct StatusPage: Sendable {
    let store: any OperatorView & StoreStatistics
    let live: LiveConfig
    let logger: Logger
    /// A link to a run (Azure ML studio in cloud mode), or nil.
    var runLink: @Sendable (_ experiment: String, _ runID: String) -> String? = { _, _ in nil }
    /// Served over HTTPS: the session cookie is marked Secure, so a browser never sends it in the clear.
    var secure = false
    /// Failed sign-ins, per client address.
    let signIns = ClientThrottle()

    static let cookie = "mlhook_ui"
    static let sessionSeconds: TimeInterval = 12 * 3600

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("/ui") { req, _ in try await self.page(req) }
        router.get("/ui/jobs/:id") { req, ctx in try await self.jobPage(req, id: ctx.parameters.get("id") ?? "") }
        router.get("/ui/login") { _, _ in self.live.adminToken == nil ? Self.notFound() : Self.html(.ok, Self.loginForm(error: nil)) }
        router.post("/ui/login") { req, ctx in try await self.login(req, client: ClientThrottle.client(ctx)) }
        router.post("/ui/callbacks/:id/replay") { req, ctx in
            try await self.action(req) { try await self.store.replayCallback(id: ctx.parameters.get("id") ?? "") ? "callback queued for delivery" : "no such callback" }
        }
        router.post("/ui/jobs/:id/retry") { req, ctx in
            try await self.action(req) { try await self.store.retryJob(id: ctx.parameters.get("id") ?? "") ? "job queued again" : "only failed or dead jobs are retried" }
        }
    }

    // MARK: Sessions

    enum Viewer { case off, anonymous, bearer, session(String) }

    func viewer(_ req: Request) -> Viewer {
        guard let token = live.adminToken else { return .off }
        if case .allowed = AdminAPI.authorize(req, token: token) { return .bearer }
        guard let value = Self.cookieValue(req, Self.cookie), Self.validSession(value, token: token, now: Date()) else { return .anonymous }
        return .session(value)
    }

    static func mac(_ token: WebhookSecret, _ text: String) -> String {
        guard let key = try? HMACKey(algorithm: .sha256, key: token.bytes) else { return "" }
        return ByteEncoding.hex(key.authenticationCode(Array(text.utf8)))
    }

    static func newSession(token: WebhookSecret, now: Date) -> String {
        let expiry = String(Int(now.timeIntervalSince1970 + sessionSeconds))
        return expiry + "." + mac(token, "ui-session:" + expiry)
    }

    static func validSession(_ value: String, token: WebhookSecret, now: Date) -> Bool {
        let parts = value.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let expiry = Int(parts[0]), Double(expiry) > now.timeIntervalSince1970 else { return false }
        return ConstantTime.tokenEquals(parts[1], mac(token, "ui-session:" + parts[0]))
    }

    static func csrf(token: WebhookSecret, session: String) -> String { mac(token, "ui-csrf:" + session) }

    static func cookieValue(_ req: Request, _ name: String) -> String? {
        for header in req.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let kv = pair.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == name { return String(kv[1]) }
            }
        }
        return nil
    }

    func login(_ req: Request, client: String) async throws -> Response {
        guard let token = live.adminToken else { return Self.notFound() }
        // Guessing is slowed per client address: past the limit that client's sign-ins wait, the right token too;
        // other clients are not locked out by it.
        if let wait = signIns.wait(client, now: Date()) {
            logger.notice("status page: sign-in refused (too many failed attempts from this client)", metadata: ["client": .string(client)])
            var r = Self.html(.tooManyRequests, Self.loginForm(error: "Too many failed sign-ins; try again in \(wait) s."))
            r.headers[.retryAfter] = String(wait)
            return r
        }
        let body = String(buffer: try await req.body.collect(upTo: 16 << 10))
        let given = (try? FormURLEncoded.dictionary(body))?["token"] ?? ""
        guard ConstantTime.tokenEquals(given, token.text) else {
            signIns.failed(client, now: Date())
            logger.notice("status page: sign-in refused (wrong token)", metadata: ["client": .string(client)])
            return Self.html(.unauthorized, Self.loginForm(error: "That is not the admin token."))
        }
        let session = Self.newSession(token: token, now: Date())
        var r = Response(status: .seeOther, headers: [.location: "/ui"])
        r.headers[.setCookie] = "\(Self.cookie)=\(session); Path=/ui; HttpOnly; SameSite=Strict; Max-Age=\(Int(Self.sessionSeconds))"
            + (secure ? "; Secure" : "")
        return r
    }

    /// A protected POST: a session with its CSRF token and no foreign Origin, or a bearer token.
    func action(_ req: Request, _ perform: () async throws -> String) async throws -> Response {
        guard let token = live.adminToken else { return Self.notFound() }
        switch viewer(req) {
        case .off: return Self.notFound()
        case .anonymous: return Self.html(.unauthorized, Self.loginForm(error: "Sign in first."))
        case .bearer: break
        case .session(let session):
            let form = (try? FormURLEncoded.dictionary(String(buffer: try await req.body.collect(upTo: 16 << 10)))) ?? [:]
            guard ConstantTime.tokenEquals(form["csrf"] ?? "", Self.csrf(token: token, session: session)) else {
                return Self.html(.forbidden, Self.shell(title: "Refused", body: "<p>The form's CSRF token is missing or wrong. Reload the page and try again.</p>"))
            }
            // Browsers send Origin on POST; one that is not this host (or a missing Host to compare with) is refused.
            if let origin = req.headers[.origin], !(req.head.authority.map { origin == "http://\($0)" || origin == "https://\($0)" } ?? false) {
                return Self.html(.forbidden, Self.shell(title: "Refused", body: "<p>Cross-site request refused.</p>"))
            }
        }
        let notice = try await perform()
        logger.notice("status page: \(notice)", metadata: ["path": .string(req.uri.path)])
        return Response(status: .seeOther, headers: [.location: "/ui?notice=" + (notice.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")])
    }

    // MARK: Pages

    func page(_ req: Request) async throws -> Response {
        guard let token = live.adminToken else { return Self.notFound() }
        let session: String
        switch viewer(req) {
        case .off: return Self.notFound()
        case .anonymous: return Response(status: .seeOther, headers: [.location: "/ui/login"])
        case .bearer: session = ""
        case .session(let s): session = s
        }
        let csrf = Self.csrf(token: token, session: session)
        let counts = try await store.counts()
        let events = try await store.events(EventQuery(limit: 25))
        let jobs = try await store.jobs(JobQuery(limit: 25))
        let dead = try await store.callbacks(CallbackQuery(limit: 25, state: .dead))
        var h = ""
        if let notice = req.uri.queryParameters.get("notice") { h += "<p class=notice>\(Self.escape(notice))</p>" }
        h += "<section><h2>Queues</h2><table><tr>"
        let depth: [(String, Int)] = [("events to plan", counts.events["received"] ?? 0), ("jobs queued", counts.jobs["queued"] ?? 0),
                                      ("running", counts.jobs["running"] ?? 0), ("runs watched", counts.jobs["watching"] ?? 0),
                                      ("callbacks pending", counts.callbacks["pending"] ?? 0), ("dead callbacks", counts.callbacks["dead"] ?? 0)]
        h += depth.map { "<td><b>\($0.1)</b><br>\($0.0)</td>" }.joined() + "</tr></table></section>"

        h += "<section><h2>Recent events</h2><table><tr><th>received</th><th>source</th><th>kind</th><th>delivery</th><th>outcome</th><th>why</th></tr>"
        let explanations = try await store.explanations(ids: events.map(\.id))
        for e in events {
            let why = explanations[e.id].map { "<details><summary>rules</summary><pre>\(Self.escape($0))</pre></details>" } ?? ""
            h += "<tr class=\(e.state.rawValue)><td>\(Self.time(e.receivedAt))</td><td>\(Self.escape(e.source))</td><td>\(Self.escape(e.kind))</td>"
                + "<td><code>\(Self.escape(String(e.deliveryID.prefix(40))))</code></td><td>\(e.state.rawValue)</td><td>\(why)</td></tr>"
        }
        h += "</table></section>"

        h += "<section><h2>Jobs</h2><table><tr><th>job</th><th>rule</th><th>action</th><th>state</th><th>attempts</th><th>run</th><th>error</th><th></th></tr>"
        for j in jobs {
            let retry = [.failed, .dead].contains(j.state) ? Self.button("/ui/jobs/\(j.id)/retry", "Retry", csrf: csrf) : ""
            h += "<tr class=\(j.state.rawValue)><td><a href=\"/ui/jobs/\(Self.escape(j.id))\">\(Self.escape(j.id))</a></td><td>\(Self.escape(j.rule))#\(j.actionIndex + 1)</td>"
                + "<td>\(j.action)</td><td>\(j.state.rawValue)</td><td>\(j.attempts)/\(j.maxAttempts)</td><td>\(run(j))</td>"
                + "<td>\(Self.escape(String((j.lastError ?? "").prefix(160))))</td><td>\(retry)</td></tr>"
        }
        h += "</table></section>"

        h += "<section><h2>Dead-lettered callbacks</h2>"
        if dead.isEmpty { h += "<p>None.</p>" } else {
            h += "<table><tr><th>callback</th><th>kind</th><th>to</th><th>job</th><th>attempts</th><th>last answer</th><th></th></tr>"
            for c in dead {
                h += "<tr class=dead><td>\(Self.escape(c.id))</td><td>\(Self.escape(c.kind))</td><td>\(Self.escape(Self.origin(c.url)))</td>"
                    + "<td><a href=\"/ui/jobs/\(Self.escape(c.jobID))\">\(Self.escape(c.jobID))</a></td><td>\(c.attempts)</td>"
                    + "<td>\(Self.escape(c.lastStatus.map { "HTTP \($0)" } ?? String((c.lastError ?? "").prefix(120))))</td>"
                    + "<td>\(Self.button("/ui/callbacks/\(c.id)/replay", "Replay", csrf: csrf))</td></tr>"
            }
            h += "</table>"
        }
        h += "</section>"
        // `?refresh=N` sets the interval (0 turns it off, for reading a long explanation); default 5 s.
        let refresh = req.uri.queryParameters.get("refresh").flatMap(Int.init).map { min(max($0, 0), 3600) } ?? 5
        return Self.html(.ok, Self.shell(title: "mlhook", body: h, refresh: refresh))
    }

    func jobPage(_ req: Request, id: String) async throws -> Response {
        switch viewer(req) {
        case .off: return Self.notFound()
        case .anonymous: return Response(status: .seeOther, headers: [.location: "/ui/login"])
        case .bearer, .session: break
        }
        guard let j = try await store.job(id: id) else { return Self.html(.notFound, Self.shell(title: "No such job", body: "<p>No job \(Self.escape(id)).</p>")) }
        var h = "<p><a href=\"/ui\">← status</a></p><table>"
        let rows: [(String, String)] = [("job", j.id), ("state", j.state.rawValue), ("rule", "\(j.rule) (action \(j.actionIndex + 1): \(j.action))"),
                                        ("event", j.eventID), ("delivery", j.deliveryID ?? ""), ("attempts", "\(j.attempts)/\(j.maxAttempts)"),
                                        ("parameters", j.parameters), ("result", j.result ?? ""), ("last error", j.lastError ?? "")]
        for (k, v) in rows { h += "<tr><th>\(k)</th><td><code>\(Self.escape(v))</code></td></tr>" }
        h += "<tr><th>run</th><td>\(run(j))</td></tr></table><h2>Attempts</h2><table><tr><th>#</th><th>started</th><th>ended</th><th>outcome</th><th>error</th></tr>"
        for a in try await store.attempts(jobID: id) {
            h += "<tr><td>\(a.number)</td><td>\(Self.time(a.startedAt))</td><td>\(Self.time(a.endedAt))</td><td>\(a.outcome.rawValue)</td><td>\(Self.escape(a.error ?? ""))</td></tr>"
        }
        h += "</table>"
        return Self.html(.ok, Self.shell(title: "mlhook job \(j.id)", body: h))
    }

    /// The job's run: a link when one is known, else its id and status.
    func run(_ j: JobRecord) -> String {
        guard let r = JSONValue(json: Array((j.result ?? "").utf8)), let run = RunReference(result: r) else { return "" }
        let status = r["status"]?.string.map { " (\(Self.escape($0)))" } ?? ""
        // A v2 job's own studio link (Azure ML studio, or aml-local's page); else the workspace's run link.
        if let link = run.studioURL ?? runLink(run.experiment, run.id) {
            return "<a href=\"\(Self.escape(link))\">\(Self.escape(run.id))</a>\(status)"
        }
        return "<code>\(Self.escape(run.id))</code>\(status)"
    }

    // MARK: HTML

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Scheme and host only: a Slack response_url or a URL with a token in it is itself a credential.
    static func origin(_ url: String) -> String {
        guard let u = URL(string: url), let scheme = u.scheme, let host = u.host else { return "?" }
        return "\(scheme)://\(host)\(u.port.map { ":\($0)" } ?? "")/…"
    }

    static func time(_ d: Date) -> String { d.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false)) }

    static func button(_ action: String, _ label: String, csrf: String) -> String {
        "<form method=post action=\"\(escape(action))\"><input type=hidden name=csrf value=\"\(csrf)\"><button type=submit>\(label)</button></form>"
    }

    static func loginForm(error: String?) -> String {
        shell(title: "mlhook: sign in", body: (error.map { "<p class=notice>\(escape($0))</p>" } ?? "")
            + "<form method=post action=\"/ui/login\"><label>Admin token <input type=password name=token autofocus></label> <button type=submit>Sign in</button></form>")
    }

    static func shell(title: String, body: String, refresh: Int = 0) -> String {
        """
        <!doctype html><html lang=en><head><meta charset=utf-8><title>\(escape(title))</title>\(refresh > 0 ? "<meta http-equiv=refresh content=\(refresh)>" : "")
        <meta name=viewport content="width=device-width, initial-scale=1">
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
        table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
        tr.succeeded td,tr.delivered td,tr.planned td{background:#f1faf1}tr.failed td,tr.dead td{background:#fdf0f0}
        tr.ignored td{color:#777}tr.watching td,tr.running td{background:#f0f5fd}.notice{background:#fff7d6;padding:.5em}
        pre{white-space:pre-wrap;margin:0}form{display:inline}code{font-size:12px}td{overflow-wrap:anywhere}
        </style></head><body><h1>mlhook</h1>
        \(body)
        <p style="color:#888">\(refresh > 0 ? "Refreshes every \(refresh) s. " : "")\(time(Date()))</p></body></html>
        """
    }

    static func html(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                           HTTPField.Name("X-Frame-Options")!: "DENY",
                                           HTTPField.Name("Content-Security-Policy")!: "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func notFound() -> Response { AdminAPI.error(.notFound, "not_found", "the status page is off: set admin.token in the configuration") }
}

