import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MLHookCore
import NIOCore
import Signing
import Store

/// `POST /hooks/{source}`: verify over the raw bytes, validate, plan, store durably, and only then answer 2xx.
struct IngressController: Sendable {
    /// Sources are read per request, so a reloaded configuration applies to the next delivery.
    let live: LiveConfig
    let store: any Inbox
    let maxBodyBytes: Int
    let now: @Sendable () -> Date
    let logger: Logger
    let metrics: MLHookMetrics
    /// Body bytes being read over all requests (`server.max_inflight_body_bytes`).
    var inflight = BodyBudget(limit: 128 << 20)
    /// The slowest a body may arrive once its grace has passed (`server.min_body_bytes_per_second`), or nil.
    var minimumRate: (bytesPerSecond: Double, grace: Duration)? = (16 * 1024, .seconds(5))
    /// Deepest JSON nesting accepted; real webhook payloads nest well under 20 levels.
    static let maxJSONDepth = 128

    func addRoutes(to router: Router<some RequestContext>) {
        router.post("/hooks/:source") { request, context in
            await self.receive(request, source: context.parameters.get("source") ?? "", client: ClientThrottle.client(context))
        }
    }

    func receive(_ request: Request, source name: String, client: String = "") async -> Response {
        let started = ContinuousClock.now
        let (response, outcome) = await handle(request, source: name, client: client)
        // A path that names no source is not a label value: any string could be sent there.
        let source = outcome.name == "unknown_source" ? "unknown" : name
        metrics.eventReceived(source: source, kind: MetricLabels.kind(outcome.kind), outcome: outcome.name, duration: ContinuousClock.now - started)
        return response
    }

    /// What became of a delivery, for metrics.
    struct Outcome {
        var name: String
        var kind = ""
    }

    func handle(_ request: Request, source name: String, client: String = "") async -> (Response, Outcome) {
        let snapshot = live.snapshot
        guard let source = snapshot.sources[name] else {
            return (reject(.notFound, "unknown_source", "no source named \"\(name.prefix(64))\" is configured", source: name), Outcome(name: "unknown_source"))
        }
        let headers = request.headers
        // Metadata travels with each log call: mutating a Logger's metadata re-renders it in StreamLogHandler.
        var log: Logger.Metadata = ["source": .string(source.name)]
        // Where the signature covers an id (Standard Webhooks' `{id}.{timestamp}.{body}`), that id is the dedup key:
        // another id header (webhook-id beside svix-signature, GitLab's Idempotency-Key) could be changed freely.
        let delivery = Self.signedDeliveryID(source, headers) ?? source.first(source.deliveryHeaders, in: headers)
        if let delivery { log["delivery_id"] = .string(String(delivery.prefix(128))) }

        // Content type before reading the body.
        let mediaType = (headers[.contentType] ?? "").split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        } ?? ""
        guard let form = accepts(source.format, mediaType) else {
            return (reject(.unsupportedMediaType, "unsupported_media_type",
                           "source \(source.name) (\(source.type.rawValue)) accepts \(acceptedTypes(source.format)); got \"\(mediaType.isEmpty ? "no Content-Type" : mediaType)\"",
                           log: log), Outcome(name: "unsupported_media_type"))
        }

        // Size: refuse early on a declared length, and never buffer past the limit.
        if let declared = headers[.contentLength].flatMap(Int.init), declared > maxBodyBytes {
            return (reject(.contentTooLarge, "payload_too_large", "body of \(declared) bytes exceeds the limit of \(maxBodyBytes) bytes", log: log),
                    Outcome(name: "payload_too_large"))
        }
        // Memory before authentication is bounded over all requests and per client address: bytes are reserved as
        // they arrive, so a body that trickles in holds only what it sent; a declared length that cannot fit what
        // is left (of the whole, or of this client's share) is refused at once without being read.
        let declared = headers[.contentLength].flatMap(Int.init)
        if let declared, !inflight.fits(declared, client: client) {
            return (busy(log), Outcome(name: "server_busy"))
        }
        var held = 0
        defer { inflight.release(held, client: client) }
        var received: ByteBuffer?
        let reading = ContinuousClock.now
        do {
            for try await chunk in request.body {
                guard inflight.reserve(chunk.readableBytes, client: client) else { return (busy(log), Outcome(name: "server_busy")) }
                held += chunk.readableBytes
                guard held <= maxBodyBytes else {
                    return (reject(.contentTooLarge, "payload_too_large", "body exceeds the limit of \(maxBodyBytes) bytes", log: log), Outcome(name: "payload_too_large"))
                }
                if received == nil { received = chunk } else { received!.writeImmutableBuffer(chunk) }
                if let floor = minimumRate, case let elapsed = ContinuousClock.now - reading, elapsed > floor.grace,
                   Double(held) < floor.bytesPerSecond * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) {
                    return (reject(.requestTimeout, "body_too_slow", "the body arrived slower than \(Int(floor.bytesPerSecond)) bytes a second", log: log),
                            Outcome(name: "body_too_slow"))
                }
            }
        } catch {
            return (reject(.badRequest, "body_unreadable", "the body could not be read completely (\(type(of: error)))", log: log), Outcome(name: "body_unreadable"))
        }
        let buffer = received ?? ByteBuffer()

        // Signature over the raw bytes, before any parsing.
        let receivedAt = now()
        if let verifier = source.verifier {
            let result = buffer.withUnsafeReadableBytes { raw in
                Result { () throws(VerificationFailure) -> Int in try verifier.verify(headers: headers, body: raw, now: receivedAt) }
            }
            if case .failure(let failure) = result {
                metrics.signatureFailure(source: source.name, reason: failure.reason.rawValue)
                return (reject(.unauthorized, "invalid_signature", failure.detail, log: log, extra: [
                    "reason": failure.reason.rawValue, "header": failure.header, "scheme": failure.scheme,
                ]), Outcome(name: "invalid_signature"))
            }
        }

        // Then the body's format.
        let body = Array(buffer.readableBytesView)
        let parsed: ParsedBody
        do {
            parsed = try validate(body, source: source, form: form)
        } catch {
            return (reject(.badRequest, "malformed_body", error.message, log: log), Outcome(name: "malformed_body"))
        }
        if let challenge = parsed.slackChallenge {
            logger.info("slack url_verification answered", metadata: log)
            return (json(.ok, ["challenge": challenge]), Outcome(name: "url_verification"))
        }

        let kind = parsed.kind ?? source.first(source.eventHeaders, in: headers) ?? "unknown"
        let deliveryID = delivery ?? parsed.deliveryID ?? fallbackDeliveryID(source, headers: headers, body: body)
        let event = InboundEvent(id: EventID.make(at: receivedAt), source: source.name, kind: kind, deliveryID: deliveryID,
                                 headers: source.kept(headers), body: body, contentType: mediaType, receivedAt: receivedAt)
        // Planned here, with the configuration that accepted it, so the event is stored with its verdict and
        // jobs in one transaction: the planner does not read it back and write it a second time.
        let decision = EventPlanner.decide(event, config: snapshot.config)
        if let field = Self.textWithNUL(event, decision) {
            return (reject(.badRequest, "malformed_body", "the event's \(field) holds a NUL character (U+0000), which no forge sends and mlhook does not store as text",
                           log: log), Outcome(name: "malformed_body"))
        }
        let outcome: AppendOutcome
        do {
            outcome = try await store.append(event, plan: decision.record, jobs: decision.jobs)
        } catch {
            logger.error("hook not stored, answered 503 so the sender retries: \(error)", metadata: log)
            var r = json(.serviceUnavailable, ["error": "store_unavailable", "message": "the event could not be stored; retry later"])
            r.headers[.retryAfter] = "1"
            return (r, Outcome(name: "store_unavailable", kind: kind))
        }
        log["event_id"] = .string(outcome.id)
        log["delivery_id"] = .string(deliveryID)
        log["kind"] = .string(kind)
        switch outcome {
        case .stored(let id):
            logger.info("hook stored", metadata: log)
            EventPlanner.log(decision, logger: logger, metadata: log)
            if let command = parsed.slackCommand {
                var r = json(.ok, ["response_type": "ephemeral", "text": "mlhook received \(command) (event \(id)); results will follow here."])
                r.headers[Self.eventIDHeader] = id  // Slack's body is a message; `mlhook send --wait` reads the id here
                return (r, Outcome(name: "stored", kind: kind))
            }
            return (Self.eventResponse(.accepted, id: id, duplicate: false), Outcome(name: "stored", kind: kind))
        case .duplicate(let id):
            logger.info("hook is a duplicate delivery; nothing new stored", metadata: log)
            if parsed.slackCommand != nil {
                var r = json(.ok, ["response_type": "ephemeral", "text": "mlhook already has this command (event \(id))."])
                r.headers[Self.eventIDHeader] = id
                return (r, Outcome(name: "duplicate", kind: kind))
            }
            return (Self.eventResponse(.ok, id: id, duplicate: true), Outcome(name: "duplicate", kind: kind))
        }
    }

    /// Which text the event would be stored with holds a NUL, or nil. A signed payload can put `\u0000` in a
    /// branch or repository name; PostgreSQL refuses NUL in text (22021), which failed the whole group commit it
    /// was in (37 of 40 clean deliveries sent with it got 503). So such an event is a 400 before anything is stored,
    /// on every backend; its body is bytes and stays exact only because nothing of it is stored.
    static func textWithNUL(_ event: InboundEvent, _ decision: EventPlanner.Decision) -> String? {
        func has(_ s: String?) -> Bool { s?.utf8.contains(0) ?? false }
        if has(event.kind) { return "kind" }
        if has(event.deliveryID) { return "delivery id" }
        if has(decision.record.explanation) || has(decision.record.plan) { return "ref, repository or another value a rule reads" }
        for job in decision.jobs where has(job.idempotencyKey) || has(job.parameters) || has(job.supersedeScope) {
            return "ref, repository or another value an action takes"
        }
        return nil
    }

    /// 503 with Retry-After: the body budget (all clients', or this client's share) is full.
    private func busy(_ log: Logger.Metadata) -> Response {
        var r = reject(.serviceUnavailable, "server_busy", "too many request bodies are being read; retry shortly", log: log)
        r.headers[.retryAfter] = "1"
        return r
    }

    /// The stored event's id, on answers whose body cannot carry it (Slack's).
    static let eventIDHeader = HTTPField.Name("MLHook-Event-Id")!

    /// Whether a media type fits the source; returns whether the body is a form.
    private func accepts(_ format: IngressSource.BodyFormat, _ mediaType: String) -> Bool? {
        switch (format, mediaType) {
        case (_, "application/json"): false
        case (.jsonOrPayloadForm, "application/x-www-form-urlencoded"), (.slack, "application/x-www-form-urlencoded"): true
        default: nil
        }
    }

    private func acceptedTypes(_ format: IngressSource.BodyFormat) -> String {
        format == .json ? "application/json" : "application/json or application/x-www-form-urlencoded"
    }

    /// The delivery id a Standard Webhooks signature covers, when the request is signed that way.
    static func signedDeliveryID(_ source: IngressSource, _ headers: HTTPFields) -> String? {
        guard source.type == .standard || (source.type == .gitlab && StandardWebhooksVerifier.isPresent(in: headers)) else { return nil }
        return StandardWebhooksVerifier.signedID(in: headers)
    }

    private func fallbackDeliveryID(_ source: IngressSource, headers: HTTPFields, body: [UInt8]) -> String {
        // Slack sends no delivery id: the timestamp and body identify a request (a retry repeats both).
        let ts = source.type == .slack ? headers[HTTPField.Name("X-Slack-Request-Timestamp")!] ?? "" : ""
        let prefix = Array(ts.utf8)
        let digest = prefix.withUnsafeBytes { p in body.withUnsafeBytes { b in Digest.sha256(p, b) } }
        return "sha256:" + ByteEncoding.hex(digest)
    }

    /// `{"duplicate":…,"event_id":"…"}`; event ids are plain ASCII.
    static func eventResponse(_ status: HTTPResponse.Status, id: String, duplicate: Bool) -> Response {
        var j = JSONText()
        j.add("duplicate", duplicate)
        j.add("event_id", id)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: j.text)))
    }

    private func reject(_ status: HTTPResponse.Status, _ code: String, _ message: String, source: String? = nil,
                        log: Logger.Metadata = [:], extra: [String: String] = [:]) -> Response {
        var metadata = log
        if let source { metadata["source"] = .string(String(source.prefix(64))) }
        metadata["status"] = .stringConvertible(status.code)
        metadata["error"] = .string(code)
        for (k, v) in extra { metadata[k] = .string(v) }
        logger.notice("hook rejected: \(message)", metadata: metadata)
        var body: [String: any Sendable] = ["error": code, "message": message]
        for (k, v) in extra { body[k] = v }
        return json(status, body)
    }
}

/// What ingress learns from a body while validating it.
struct ParsedBody {
    var kind: String?
    var deliveryID: String?
    var slackCommand: String?
    var slackChallenge: String?
}

/// A body that is not of the source's format.
struct MalformedBody: Error {
    let message: String
}

extension IngressController {
    func validate(_ body: [UInt8], source: IngressSource, form: Bool) throws(MalformedBody) -> ParsedBody {
        let format = source.format
        if !form {
            if let failure = Self.jsonFailure(body) {
                if case .invalidUTF8 = failure { throw MalformedBody(message: failure.description) }
                throw MalformedBody(message: "the body is not a valid JSON object: \(failure.description)")
            }
            if format == .slack { return slackEvent(body) }
            // Standard Webhooks payloads (and generic ones without an event header) name their event in `type`.
            if source.type == .standard || (source.type == .generic && source.eventHeaders.isEmpty) {
                return ParsedBody(kind: topLevelString(body, "type"))
            }
            return ParsedBody()
        }
        guard let text = String(validating: body, as: UTF8.self) else {
            throw MalformedBody(message: "the body is not valid UTF-8")
        }
        let fields: [String: String]
        do { fields = try FormURLEncoded.dictionary(text) } catch {
            throw MalformedBody(message: "the form body is malformed: \(error.description)")
        }
        switch format {
        case .jsonOrPayloadForm:
            guard let payload = fields["payload"] else {
                throw MalformedBody(message: "a form body must carry the JSON in its payload field")
            }
            let bytes = Array(payload.utf8)
            if let failure = Self.jsonFailure(bytes) {
                throw MalformedBody(message: "the payload field is not a valid JSON object: \(failure.description)")
            }
            return ParsedBody()
        case .slack:
            if let command = fields["command"], !command.isEmpty {
                let text = fields["text"].map { $0.isEmpty ? "" : " " + $0 } ?? ""
                return ParsedBody(kind: command, slackCommand: command + text)
            }
            if fields["payload"] != nil { return ParsedBody(kind: "interaction") }
            throw MalformedBody(message: "a Slack form must carry a command field (slash command) or a payload field")
        case .json:
            throw MalformedBody(message: "expected JSON")
        }
    }

    /// Slack Events API JSON: the URL-verification handshake, or an event with its `event_id`.
    private func slackEvent(_ body: [UInt8]) -> ParsedBody {
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
        if object["type"] as? String == "url_verification" {
            return ParsedBody(slackChallenge: object["challenge"] as? String ?? "")
        }
        let event = object["event"] as? [String: Any]
        return ParsedBody(kind: event?["type"] as? String ?? object["type"] as? String, deliveryID: object["event_id"] as? String)
    }

    /// Why `bytes` is not a JSON object within the depth limit, or nil when it is one.
    static func jsonFailure(_ bytes: [UInt8]) -> JSONValidator.Failure? {
        bytes.withUnsafeBytes { raw in
            do throws(JSONValidator.Failure) {
                try JSONValidator.validateObject(raw, maxDepth: maxJSONDepth)
                return nil
            } catch {
                return error
            }
        }
    }

    private func topLevelString(_ body: [UInt8], _ key: String) -> String? {
        ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any])?[key] as? String
    }
}

/// A JSON response.
func json(_ status: HTTPResponse.Status, _ object: [String: any Sendable]) -> Response {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
