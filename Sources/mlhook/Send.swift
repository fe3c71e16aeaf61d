import AsyncHTTPClient
import ArgumentParser
import Foundation
import MLHookCore
import MLHookServer
import NIOCore
import NIOSSL
import Signing
import Store

/// `mlhook send`: build and sign a test event for any provider, like `stripe trigger`.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign a payload as a provider would and POST it; --wait follows the event, its jobs and callbacks.",
        discussion: """
            PROVIDER is github, gitea, gitlab, bitbucket, slack, standard or generic; EVENT is the provider's event \
            name (push, "Push Hook", repo:push, /aml, invoice.paid, …). The secret is the first one of the configured \
            source named --source (default: PROVIDER). Without --payload, a built-in payload is sent: a push of --repo's \
            --ref commit (default: the sample's repository, main) for push events, the type for standard and generic, \
            the command and --text for slack. Example: mlhook send github push --repo ~/ml --ref main --wait

            Exit status: 0 the delivery was accepted (with --wait: every job succeeded and every callback was \
            delivered, or the delivery created nothing new); 1 the POST failed or was refused, or (with --wait) a job \
            failed or died or a callback was dead-lettered; 2 a usage or configuration error; 124 --wait gave up \
            after --timeout seconds.
            """
    )

    @OptionGroup var options: ConfigOption
    @Argument(help: "github, gitea, gitlab, bitbucket, slack, standard or generic.") var provider: String
    @Argument(help: "The event name the provider would send (push, \"Push Hook\", repo:push, /aml for slack, a type for standard).")
    var event: String
    @Option(help: "The payload file (JSON; a form body for slack). Default: a built-in payload for the event.") var payload: String?
    @Option(help: "For a built-in push: the local git repository whose commit is pushed (default: the sample's).")
    var repo: String = ".mlhook/sample-repo"
    @Option(help: "For a built-in push: the branch, tag or commit pushed.") var ref: String = "main"
    @Option(help: "For a built-in slack command: its text (\"scale cpu-cluster 2\").") var text: String = ""
    @Option(help: "A PEM file of the CA (or self-signed certificate) to trust for https, as with curl --cacert.") var cacert: String?
    @Option(help: "Where to POST it (default: the configured listen address and source).") var to: String?
    @Option(help: "The configured source whose secret signs (default: the provider's name).") var source: String?
    @Option(help: "Delivery id (default: a new UUID).") var delivery: String?
    @Flag(help: "Follow the event's jobs and callbacks in the local store until they finish.") var wait = false
    @Option(help: "With --wait: give up after this many seconds (exit 124).") var timeout: Int = 600

    func run() async throws {
        let loaded = try options.load()
        let name = source ?? provider
        guard let src = loaded.config.source(named: name) else {
            printError("no source named \(name) in the configuration (use --source)")
            throw ExitCode(2)
        }
        var event = self.event
        let body: [UInt8]
        if let payload {
            guard let data = FileManager.default.contents(atPath: payload) else {
                printError("cannot read \(payload)")
                throw ExitCode(2)
            }
            body = [UInt8](data)
        } else {
            do {
                (body, event) = try await SendPayloads.build(provider: provider, event: event, commit: {
                    try await SendPayloads.commit(repo: repo, ref: ref)
                }, text: text)
            } catch let e as SendPayloads.Failure {
                printError(e.description)
                throw ExitCode(2)
            }
        }
        let secret: WebhookSecret
        do {
            guard let ref = src.secrets.first else { throw ConfigError([ConfigIssue(file: "<config>", line: 0, key: "sources[\(name)].secrets", message: "has no secret to sign with")]) }
            secret = try SecretResolver().resolve(ref, key: "sources[\(name)].secrets[0]")
        } catch let e as ConfigError {
            printError(e.description)
            throw ExitCode(2)
        }
        let id = delivery ?? UUID().uuidString.lowercased()
        let now = Int(Date().timeIntervalSince1970)
        var headers: [(String, String)] = [("Content-Type", provider == "slack" ? "application/x-www-form-urlencoded" : "application/json")]
        switch provider {
        case "github": headers += try WebhookSigner.github(secret: secret, body: body).map { ($0.name, $0.value) } + [("X-GitHub-Event", event), ("X-GitHub-Delivery", id)]
        case "gitea": headers += try WebhookSigner.gitea(secret: secret, body: body).map { ($0.name, $0.value) } + [("X-Gitea-Event", event), ("X-Gitea-Delivery", id)]
        case "gitlab":
            let signed = secret.text.hasPrefix("whsec_") ? try WebhookSigner.standard(secret: secret, id: id, timestamp: now, body: body).map { ($0.name, $0.value) }
                : WebhookSigner.gitlab(token: secret).map { ($0.name, $0.value) } + [("Idempotency-Key", id)]
            headers += signed + [("X-Gitlab-Event", event)]
        case "bitbucket": headers += try WebhookSigner.bitbucket(secret: secret, body: body).map { ($0.name, $0.value) } + [("X-Event-Key", event), ("X-Request-UUID", id)]
        case "slack": headers += try WebhookSigner.slack(secret: secret, body: body, timestamp: now).map { ($0.name, $0.value) }
        case "standard": headers += try WebhookSigner.standard(secret: secret, id: id, timestamp: now, body: body).map { ($0.name, $0.value) }
        case "generic":
            guard let generic = src.generic, let scheme = try? generic.scheme(tolerance: src.toleranceSeconds) else {
                printError("source \(name) is not a generic source with a valid generic: section")
                throw ExitCode(2)
            }
            var named: [String: String] = [:]
            if let h = generic.deliveryHeader { named[h] = id }
            if let h = generic.eventHeader { named[h] = event }
            headers += named.map { ($0.key, $0.value) }
            headers += try WebhookSigner.generic(scheme: scheme, secret: secret, body: body, timestamp: now, headers: named).map { ($0.name, $0.value) }
        default:
            printError("unknown provider \(provider): github, gitea, gitlab, bitbucket, slack, standard or generic")
            throw ExitCode(2)
        }
        // The configured listener: https when mlhook serves TLS itself.
        let scheme = loaded.config.server.tls == nil ? "http" : "https"
        let url = to ?? "\(scheme)://\(loaded.config.server.host == "0.0.0.0" ? "127.0.0.1" : loaded.config.server.host):\(loaded.config.server.port)/hooks/\(name)"
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        let client = try Self.client(cacert: cacert)
        let answer: String
        do {
            response = try await client.execute(request, timeout: .seconds(30))
            answer = String(buffer: try await response.body.collect(upTo: 1 << 20))
            try? await client.shutdown()
        } catch {
            try? await client.shutdown()
            printError("POST \(url) failed: \(Self.explain(error))")
            throw ExitCode(1)
        }
        print("\(response.status.code) \(answer)")
        guard (200..<300).contains(Int(response.status.code)) else { throw ExitCode(1) }
        guard wait, let eventID = JSONValue(json: Array(answer.utf8))?["event_id"]?.string ?? response.headers.first(name: "MLHook-Event-Id") else { return }
        if JSONValue(json: Array(answer.utf8))?["duplicate"] == .bool(true) {
            print("duplicate delivery: event \(eventID) was stored before; nothing new runs")
            return
        }
        guard timeout > 0 else { printError("--timeout must be at least 1"); throw ExitCode(2) }
        try await follow(eventID, store: try await Events.openStore(options))
    }

    /// A client for one POST: a refused connection or a failed TLS handshake is reported at once (the shared
    /// client would retry until its timeout), trusting `cacert` in addition to the system's roots.
    static func client(cacert: String?) throws -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        if let cacert {
            let roots: [NIOSSLCertificate]
            do { roots = try NIOSSLCertificate.fromPEMFile(cacert) } catch {
                printError("--cacert \(cacert): not a PEM certificate file (\(error))")
                throw ExitCode(2)
            }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.additionalTrustRoots = [.certificates(roots)]
            configuration.tlsConfiguration = tls
        }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// A transport failure in words a user can act on (a TLS failure names the certificate problem).
    static func explain(_ error: any Error) -> String {
        if let ssl = error as? NIOSSLError {
            switch ssl {
            case .handshakeFailed(let reason):
                // BoringSSL's errors name the source file they were raised in (a build path): keep only the reason.
                var text = String(describing: reason)
                text = text.replacingOccurrences(of: #" at [^\s\]\)]+:\d+"#, with: "", options: .regularExpression)
                let codes = text.matches(of: /:([A-Z][A-Z0-9_]{3,})\b/).map { String($0.1) }
                let why = codes.contains("CERTIFICATE_VERIFY_FAILED") ? "the server's certificate is not trusted (CERTIFICATE_VERIFY_FAILED)"
                    : codes.isEmpty ? text : codes.joined(separator: ", ")
                return "the TLS handshake failed: \(why); if the server's certificate is self-signed or from a private CA, pass --cacert FILE"
            default: return "TLS: \(ssl)"
            }
        }
        if let e = error as? NIOSSLExtraError { return "TLS: \(e.description)" }
        return String(describing: error)
    }

    /// Prints the event's state, then each job and callback as they change, until all are final.
    func follow(_ eventID: String, store: any OperatorView) async throws {
        var seen: [String: String] = [:]
        let deadline = Date().addingTimeInterval(TimeInterval(timeout))
        func say(_ key: String, _ line: String) {
            if seen[key] != line { seen[key] = line; print("\(Date().formatted(.iso8601))  \(line)") }
        }
        while Date() < deadline {
            guard let e = try await store.event(id: eventID) else { try await Task.sleep(for: .milliseconds(200)); continue }
            say("event", "event \(eventID): \(e.summary.state.rawValue)")
            if e.summary.state == .ignored {
                print(e.explanation ?? "")
                return
            }
            let jobs = try await store.jobs(JobQuery(eventID: eventID)).reversed()
            for j in jobs {
                let run = RunReference(resultText: j.result).map { " \($0.label)" } ?? ""
                say(j.id, "job \(j.id) \(j.rule)#\(j.actionIndex + 1) \(j.action): \(j.state.rawValue)\(run)" + (j.lastError.map { " (\($0))" } ?? ""))
            }
            let callbacks = try await store.callbacks(CallbackQuery(eventID: eventID)).reversed()
            for c in callbacks { say(c.id, "callback \(c.id) → \(c.url): \(c.state.rawValue)") }
            // Jobs are created in the transaction that plans the event: planned with none means its actions'
            // jobs existed already (the same commit delivered before under another delivery id).
            if e.summary.state == .planned && jobs.isEmpty {
                print("event \(eventID) is planned, but its jobs already exist (the same commit or command was delivered before): nothing new runs")
                return
            }
            let jobsDone = e.summary.state == .planned && jobs.allSatisfy { [.succeeded, .failed, .dead].contains($0.state) }
            let callbacksDone = callbacks.allSatisfy { $0.state != .pending }
            if jobsDone && callbacksDone {
                let failed = jobs.filter { $0.state != .succeeded }.count, dead = callbacks.filter { $0.state == .dead }.count
                guard failed == 0 && dead == 0 else {
                    printError("\(failed) job(s) failed or died, \(dead) callback(s) dead-lettered")
                    throw ExitCode(1)
                }
                return
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        printError("gave up waiting after \(timeout) s (--timeout); the event goes on in the server")
        throw ExitCode(124)
    }
}
