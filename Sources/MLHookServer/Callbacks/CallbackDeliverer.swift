import AsyncHTTPClient
import Foundation
import Logging
import MLHookCore
import NIOCore
import ServiceLifecycle
import Signing
import Store

/// Delivers queued callbacks: a JSON POST signed with Standard Webhooks headers (`webhook-id` is the
/// callback's id, stable across retries), retried on a schedule, then dead-lettered.
public struct CallbackDeliverer: Service {
    let store: any CallbackOutbox & OperatorView
    let live: LiveConfig
    let logger: Logger
    let environment: [String: String]
    /// Waits between attempts; after the last one the callback is dead.
    let schedule: [TimeInterval]
    let http: HTTPClient
    let metrics: MLHookMetrics
    /// The clock signatures are stamped and retries scheduled with.
    let now: @Sendable () -> Date
    /// How long one delivery may take.
    public var timeout: TimeAmount = .seconds(10)
    /// Receivers served at once: a slow or dead one holds only its own callbacks back.
    public var parallelReceivers = 8

    public static let defaultSchedule: [TimeInterval] = [5, 30, 120, 600, 1800, 7200]

    public init(store: any CallbackOutbox & OperatorView, live: LiveConfig, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment,
                schedule: [TimeInterval] = CallbackDeliverer.defaultSchedule, http: HTTPClient = OutboundHTTP.client, metrics: MLHookMetrics = MLHookMetrics(),
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.metrics = metrics
        self.now = now
        self.store = store
        self.live = live
        self.logger = logger
        self.environment = environment
        self.schedule = schedule
        self.http = http
    }

    public func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            var delivered = 0
            do { delivered = try await deliverDue() } catch { logger.error("callbacks: \(error)") }
            if delivered == 0 { try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(200)) } }
        }
    }

    /// Attempts every due callback once. - Returns: how many were attempted.
    public func deliverDue() async throws -> Int {
        let due = try await store.dueCallbacks(now: now(), limit: 32)
        // Receivers in parallel; one receiver's callbacks in order (a GitHub status's pending before its final).
        var byURL: [String: [CallbackRecord]] = [:]
        var receivers: [String] = []
        for c in due {
            if byURL[c.url] == nil { receivers.append(c.url) }
            byURL[c.url, default: []].append(c)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, url) in receivers.enumerated() {
                if n >= parallelReceivers { try await group.next() }
                let callbacks = byURL[url] ?? []
                group.addTask { for c in callbacks { try await deliver(c) } }
            }
            try await group.waitForAll()
        }
        return due.count
    }

    func deliver(_ c: CallbackRecord) async throws {
        var meta: Logger.Metadata = ["callback_id": .string(c.id), "job_id": .string(c.jobID), "event_id": .string(c.eventID), "kind": .string(c.kind)]
        if let delivery = try? await store.job(id: c.jobID)?.deliveryID { meta["delivery_id"] = .string(delivery) }
        var status: Int?
        var failure: String
        do {
            var request = HTTPClientRequest(url: c.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "mlhook")
            switch c.kind {
            case "url":
                let secret = try resolve(c, key: "url.secret")
                let signed = try WebhookSigner.standard(secret: Self.standardKey(secret), id: c.id, timestamp: Int(now().timeIntervalSince1970),
                                                        body: Array(c.body.utf8))
                for h in signed { request.headers.add(name: h.name, value: h.value) }
            case "github_status":
                let token = try resolve(c, key: "github_status.token")
                request.headers.add(name: "Authorization", value: "Bearer \(token.text)")
                request.headers.add(name: "Accept", value: "application/vnd.github+json")
            default:
                break  // slack: response_url is itself the credential
            }
            request.body = .bytes(ByteBuffer(string: c.body))
            let response = try await http.execute(request, timeout: timeout)
            _ = try? await response.body.collect(upTo: 1 << 16)
            status = Int(response.status.code)
            if (200..<300).contains(Int(response.status.code)) {
                try await store.recordDelivery(id: c.id, state: .delivered, status: status, error: nil, retryAt: nil)
                logger.info("callback delivered", metadata: meta)
                metrics.callbackAttempt(kind: c.kind, outcome: "delivered")
                return
            }
            failure = "the receiver answered \(response.status.code)"
        } catch let gone as CallbackTargetGone {
            try await store.recordDelivery(id: c.id, state: .dead, status: nil, error: gone.description, retryAt: nil)
            metrics.callbackAttempt(kind: c.kind, outcome: "dead")
            logger.error("callback dead-lettered: its target is no longer configured", metadata: meta)
            return
        } catch {
            failure = status == nil ? "cannot deliver: \(OutboundHTTP.describe(error))" : "\(error)"
        }
        let attempt = c.attempts + 1
        if attempt > schedule.count {
            try await store.recordDelivery(id: c.id, state: .dead, status: status, error: failure, retryAt: nil)
            logger.error("callback dead-lettered after \(attempt) attempts: \(failure)", metadata: meta)
            metrics.callbackAttempt(kind: c.kind, outcome: "dead")
        } else {
            try await store.recordDelivery(id: c.id, state: .pending, status: status, error: failure,
                                           retryAt: now().addingTimeInterval(schedule[attempt - 1]))
            logger.notice("callback will be retried: \(failure)", metadata: meta)
            metrics.callbackAttempt(kind: c.kind, outcome: "failed")
        }
    }

    /// The callback's secret, read now (so a rotated one is used) from where the callback says.
    /// - Throws: `ConfigError` when it cannot be read, `CallbackTargetGone` for a literal whose target was removed.
    func resolve(_ c: CallbackRecord, key: String) throws -> WebhookSecret {
        let resolver = SecretResolver(environment: environment)
        let name = "rules[\(c.rule)].callback[\(c.targetIndex)].\(key)"
        switch c.credential {
        case .env(let variable): return try resolver.resolve(.env(variable), key: name)
        case .file(let path, let create): return try resolver.resolve(.file(path, create: create), key: name)
        case .none, .configured:
            // A literal in the configuration (or a callback queued before credentials were stored): the rule's target.
            guard let rule = live.snapshot.config.rules.first(where: { $0.name == c.rule }), c.targetIndex < rule.callbacks.count else {
                throw CallbackTargetGone()
            }
            switch rule.callbacks[c.targetIndex] {
            case .url(_, let ref), .githubStatus(let ref, _, _): return try resolver.resolve(ref, key: name)
            case .slack: throw CallbackTargetGone()
            }
        }
    }

    /// A callback whose secret lived only in a target that is no longer configured.
    struct CallbackTargetGone: Error, CustomStringConvertible {
        var description: String { "the callback target is no longer configured" }
    }

    /// A `whsec_` key as is; any other secret's raw bytes as the key (equivalent to `whsec_` + base64 of them).
    static func standardKey(_ secret: WebhookSecret) -> WebhookSecret {
        secret.text.hasPrefix("whsec_") ? secret : WebhookSecret("whsec_" + ByteEncoding.base64(secret.bytes))
    }
}
