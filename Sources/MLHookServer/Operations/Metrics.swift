import Foundation
import MLHookCore
import Hummingbird
import NIOCore
import Prometheus
import Store
import Synchronization

/// mlhook's Prometheus metrics, served at `GET /metrics`. deploy/README.md says what each one means.
///
/// Label values are bounded: sources and rules come from the configuration, kinds from authenticated senders,
/// outcomes and reasons from fixed lists. An unknown source path is counted as `source="unknown"`.
public final class MLHookMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    /// Ingest latency buckets (seconds): group commit puts most requests in 1–20 ms.
    static let ingestBuckets: [Duration] = [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
                                            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)]
    /// Job attempts and Azure ML runs take seconds to hours.
    static let longBuckets: [Duration] = [.milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(15), .seconds(60),
                                          .seconds(300), .seconds(900), .seconds(3600), .seconds(4 * 3600), .seconds(24 * 3600)]

    // The metrics' names and help, built once (not on every request).
    static let eventsReceived = describe("events_received", "total", "Webhook deliveries by source, kind and outcome (stored, duplicate or the error code).")
    static let ingestDurationDescriptor = describe("ingest_duration", "seconds", "Time from request to answer on /hooks, commit included.")
    static let signatureFailures = describe("signature_failures", "total", "Deliveries refused with 401, by source and reason.")
    static let jobAttempts = describe("job_attempts", "total", "Job attempts by action and outcome (succeeded, watching, retry, failed, dead).")
    static let jobAttemptDuration = describe("job_attempt_duration", "seconds", "Time one job attempt took, by action.")
    static let jobRetries = describe("job_retries", "total", "Job attempts that failed and were scheduled again, by action.")
    static let jobsFinished = describe("jobs_finished", "total", "Jobs that reached a final state, by action and state.")
    static let jobDuration = describe("job_duration", "seconds", "Time from planning to a final state (queueing, retries and the run included), by action and state.")
    static let runsFinished = describe("runs_finished", "total", "Azure ML runs followed to their end, by final status.")
    static let runDuration = describe("run_duration", "seconds", "Azure ML run time from start to end, by final status.")
    static let callbacks = describe("callbacks", "total", "Callback delivery attempts by target kind and outcome (delivered, failed, dead).")
    static let configReloads = describe("config_reloads", "total", "Configuration reloads by outcome (applied, rejected).")
    static let queueDepth = describe("queue_depth", "", "Work waiting: events to plan, jobs queued, running and watching, callbacks pending.")
    static let jobs = describe("jobs", "", "Jobs in the store by state.")
    static let callbacksStored = describe("callbacks_stored", "", "Callbacks in the store by state (dead ones wait for a replay).")
    static let connections = describe("connections", "", "HTTP connections open now.")
    static let connectionsRefused = describe("connections_refused", "total", "Connections closed at accept because their client address held server.max_connections_per_client.")
    static let limits = describe("limits", "", "The ingress limits in force (server.*), by name: connections, connections_per_client, header_timeout_seconds, read_timeout_seconds, idle_timeout_seconds, inflight_body_bytes, inflight_body_bytes_per_client, min_body_bytes_per_second.")
    static let parked = describe("parked_records", "", "Records set aside as poison (event, job), each kept with its reason in /ui and the admin API.")

    /// Refused connections already counted in the exported counter.
    private let refusedExported = Mutex(0)

    /// Recorded on every delivery: held rather than looked up each time.
    let ingestDuration: DurationHistogram

    public init() {
        ingestDuration = registry.makeDurationHistogram(descriptor: Self.ingestDurationDescriptor, labels: [], buckets: Self.ingestBuckets)
        // What the run-book's alerts and dashboards match is there from the start, at zero, not only after the
        // first occurrence.
        for status in ["Completed", "Failed", "Canceled"] {
            _ = registry.makeCounter(descriptor: Self.runsFinished, labels: [("status", status)])
            _ = registry.makeDurationHistogram(descriptor: Self.runDuration, labels: [("status", status)], buckets: Self.longBuckets)
        }
        for action in ActionType.allCases.map(\.rawValue) {
            for state in ["succeeded", "failed", "dead"] {
                _ = registry.makeCounter(descriptor: Self.jobsFinished, labels: [("action", action), ("state", state)])
            }
            _ = registry.makeCounter(descriptor: Self.jobRetries, labels: [("action", action)])
        }
        for kind in ["url", "slack", "github_status"] {
            for outcome in ["delivered", "failed", "dead"] {
                _ = registry.makeCounter(descriptor: Self.callbacks, labels: [("kind", kind), ("outcome", outcome)])
            }
        }
        for outcome in ["applied", "rejected"] { _ = registry.makeCounter(descriptor: Self.configReloads, labels: [("outcome", outcome)]) }
    }

    static func describe(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "mlhook", metricName: name, unitName: unit, helpText: help)
    }

    /// A delivery to `/hooks/{source}` and what became of it: `stored`, `duplicate`, or the error code answered.
    func eventReceived(source: String, kind: String, outcome: String, duration: Duration) {
        registry.makeCounter(descriptor: Self.eventsReceived,
                             labels: [("source", source), ("kind", kind), ("outcome", outcome)]).increment()
        ingestDuration.record(duration)
    }

    func signatureFailure(source: String, reason: String) {
        registry.makeCounter(descriptor: Self.signatureFailures,
                             labels: [("source", source), ("reason", reason)]).increment()
    }

    /// One attempt at a job ended: `succeeded`, `watching` (a run started), `retry`, `failed` or `dead`.
    func jobAttempt(action: String, outcome: String, duration: Duration) {
        registry.makeCounter(descriptor: Self.jobAttempts,
                             labels: [("action", action), ("outcome", outcome)]).increment()
        registry.makeDurationHistogram(descriptor: Self.jobAttemptDuration,
                                       labels: [("action", action)], buckets: Self.longBuckets).record(duration)
        if outcome == "retry" {
            registry.makeCounter(descriptor: Self.jobRetries,
                                 labels: [("action", action)]).increment()
        }
    }

    /// A job reached a final state, `createdAt` being when its event was planned.
    func jobFinished(action: String, state: String, createdAt: Date) {
        registry.makeCounter(descriptor: Self.jobsFinished,
                             labels: [("action", action), ("state", state)]).increment()
        let seconds = max(0, Date().timeIntervalSince(createdAt))
        registry.makeDurationHistogram(descriptor: Self.jobDuration,
                                       labels: [("action", action), ("state", state)], buckets: Self.longBuckets)
            .record(.milliseconds(Int64(seconds * 1000)))
    }

    /// An Azure ML run ended with `status` after `duration`.
    func runFinished(status: String, duration: Duration?) {
        registry.makeCounter(descriptor: Self.runsFinished,
                             labels: [("status", status)]).increment()
        if let duration {
            registry.makeDurationHistogram(descriptor: Self.runDuration,
                                           labels: [("status", status)], buckets: Self.longBuckets).record(duration)
        }
    }

    /// A callback attempt: `delivered`, `failed` (will be retried) or `dead`.
    func callbackAttempt(kind: String, outcome: String) {
        registry.makeCounter(descriptor: Self.callbacks,
                             labels: [("kind", kind), ("outcome", outcome)]).increment()
    }

    func configReload(outcome: String) {
        registry.makeCounter(descriptor: Self.configReloads,
                             labels: [("outcome", outcome)]).increment()
    }

    /// Queue depths and rows per state, read from the store at scrape time.
    func refresh(from store: any StoreStatistics) async {
        guard let counts = try? await store.counts() else { return }
        let queues: [(String, Int)] = [("events_unplanned", counts.events["received"] ?? 0), ("jobs_queued", counts.jobs["queued"] ?? 0),
                                       ("jobs_running", counts.jobs["running"] ?? 0), ("jobs_watching", counts.jobs["watching"] ?? 0),
                                       ("callbacks_pending", counts.callbacks["pending"] ?? 0)]
        for (queue, n) in queues { registry.makeGauge(descriptor: Self.queueDepth, labels: [("queue", queue)]).set(Double(n)) }
        for state in JobState.allCases {
            registry.makeGauge(descriptor: Self.jobs, labels: [("state", state.rawValue)]).set(Double(counts.jobs[state.rawValue] ?? 0))
        }
        for state in CallbackState.allCases {
            registry.makeGauge(descriptor: Self.callbacksStored, labels: [("state", state.rawValue)]).set(Double(counts.callbacks[state.rawValue] ?? 0))
        }
        for record in ["event", "job"] {
            registry.makeGauge(descriptor: Self.parked, labels: [("record", record)]).set(Double(counts.parked[record] ?? 0))
        }
    }

    /// Connections now, and the limits in force, for the next scrape.
    func connectionsChanged(_ connections: ClientConnections, server: ServerConfig) {
        let (open, refused) = connections.counts
        registry.makeGauge(descriptor: Self.connections, labels: []).set(Double(open))
        let counter = registry.makeCounter(descriptor: Self.connectionsRefused, labels: [])
        let already = refusedExported.withLock { seen in defer { seen = refused }; return seen }
        if refused > already { counter.increment(by: Int64(refused - already)) }
        for (name, value) in [("connections", server.maxConnections), ("connections_per_client", server.maxConnectionsPerClient),
                              ("header_timeout_seconds", server.headerTimeoutSeconds), ("read_timeout_seconds", server.readTimeoutSeconds),
                              ("idle_timeout_seconds", server.idleTimeoutSeconds), ("inflight_body_bytes", server.maxInflightBodyBytes),
                              ("inflight_body_bytes_per_client", server.inflightShare), ("min_body_bytes_per_second", server.minBodyBytesPerSecond)] {
            registry.makeGauge(descriptor: Self.limits, labels: [("limit", name)]).set(Double(value))
        }
    }

    /// `/metrics`; with `protect` (`admin.protect_metrics`), only for `Authorization: Bearer <admin token>`.
    func addRoutes(to router: Router<some RequestContext>, store: any StoreStatistics, live: LiveConfig? = nil,
                   connections: ClientConnections? = nil) {
        router.get("/metrics") { req, _ in
            if let live, live.snapshot.config.admin.protectMetrics {
                switch AdminAPI.authorize(req, token: live.adminToken) {
                case .allowed: break
                case .off, .denied:
                    var r = AdminAPI.error(.unauthorized, "unauthorized", "admin.protect_metrics is on: send Authorization: Bearer <admin token>")
                    r.headers[.wwwAuthenticate] = "Bearer realm=\"mlhook\""
                    return r
                }
            }
            await self.refresh(from: store)
            if let connections, let live { self.connectionsChanged(connections, server: live.snapshot.config.server) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: self.registry.emitToBuffer())))
        }
    }
}

// The descriptor is a struct of immutable Strings; swift-prometheus only does not declare it Sendable.
extension MetricNameDescriptor: @retroactive @unchecked Sendable {}
