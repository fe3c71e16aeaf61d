import AzureML
import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Store

/// Runs queued jobs: claims one with a lease, performs its Azure ML action, records the attempt, and retries
/// retryable failures with exponential backoff and jitter (honouring nothing longer than `maxBackoff`) until
/// `max_attempts`, after which the job is dead. Non-retryable failures fail the job at once.
///
/// `start_run` jobs need the git fetcher and the run watcher, which come with the next part of the job engine;
/// until then they stay queued rather than being marked done or failed.
public struct JobRunner: Service {
    let store: any EventStore
    let live: LiveConfig
    let client: @Sendable () async throws -> HTTPAzureMLClient
    let logger: Logger
    let workers: Int
    let lease: TimeInterval
    let baseBackoff: TimeInterval
    let maxBackoff: TimeInterval
    let now: @Sendable () -> Date

    /// Actions this runner performs.
    static let supported: Set<String> = ["scale_compute", "register_model", "delete_model", "cancel_run", "score"]

    public init(store: any EventStore, live: LiveConfig, client: @escaping @Sendable () async throws -> HTTPAzureMLClient,
                logger: Logger, workers: Int = 4, lease: TimeInterval = 300, baseBackoff: TimeInterval = 2, maxBackoff: TimeInterval = 600,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.live = live
        self.client = client
        self.logger = logger
        self.workers = workers
        self.lease = lease
        self.baseBackoff = baseBackoff
        self.maxBackoff = maxBackoff
        self.now = now
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<workers { group.addTask { await self.loop() } }
        }
    }

    func loop() async {
        while !Task.isCancelledOrShuttingDown {
            var worked = false
            do { worked = try await runOne() } catch { logger.error("job runner: \(error)") }
            if !worked { try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(100)) } }
        }
    }

    /// Claims and runs one job. - Returns: whether there was one.
    public func runOne() async throws -> Bool {
        try await store.releaseExpiredLeases(now: now())
        let limits = Dictionary(live.snapshot.config.rules.compactMap { r in r.concurrency.map { (r.name, $0) } }, uniquingKeysWith: { a, _ in a })
        guard let job = try await store.claimJob(now: now(), lease: lease, ruleLimits: limits, actions: Self.supported) else { return false }
        let started = now()
        var meta: Logger.Metadata = ["job_id": .string(job.id), "event_id": .string(job.eventID), "rule": .string(job.rule),
                                     "action": .string(job.action), "attempt": .stringConvertible(job.attempts)]
        do {
            let result = try await perform(job)
            try await store.finishAttempt(id: job.id, state: .succeeded, error: nil, result: result.text, retryAt: nil, startedAt: started, now: now())
            logger.info("job succeeded", metadata: meta)
        } catch {
            let retryable = (error as? AzureMLError)?.isRetryable ?? false
            let message = "\(error)"
            meta["error"] = .string(message)
            if retryable && job.attempts < job.maxAttempts {
                let backoff = Double.random(in: 0...min(maxBackoff, baseBackoff * pow(2, Double(job.attempts - 1))))
                try await store.finishAttempt(id: job.id, state: .queued, error: message, result: nil,
                                              retryAt: now().addingTimeInterval(backoff), startedAt: started, now: now())
                logger.notice("job will be retried", metadata: meta)
            } else {
                let state: JobState = retryable ? .dead : .failed
                try await store.finishAttempt(id: job.id, state: state, error: message, result: nil, retryAt: nil, startedAt: started, now: now())
                logger.error("job \(state.rawValue)", metadata: meta)
            }
        }
        return true
    }

    /// Performs one action. - Returns: what it produced, as JSON.
    func perform(_ job: JobRecord) async throws -> JSONValue {
        let p = try JSONDecoder().decode([String: ParameterValue].self, from: Data(job.parameters.utf8))
        func s(_ k: String) throws -> String {
            guard let v = p[k]?.string else { throw JobError("parameter \(k) is missing") }
            return v
        }
        let api = try await client()
        switch job.action {
        case "scale_compute":
            let c = try await api.scaleCompute(try s("name"), minNodes: p["min_nodes"]?.int, maxNodes: p["max_nodes"]?.int ?? 0,
                                               idleSeconds: p["idle_seconds"]?.int)
            return ["compute": .string(try s("name")), "provisioningState": c.value(at: "properties.provisioningState") ?? nil,
                    "maxNodeCount": c.value(at: "properties.properties.scaleSettings.maxNodeCount") ?? nil]
        case "delete_model":
            try await api.deleteModel(try s("id"))
            return ["deleted": .string(try s("id"))]
        case "cancel_run":
            try await api.cancelRun(experiment: try s("experiment"), runID: try s("run_id"))
            return ["canceled": .string(try s("run_id"))]
        case "register_model":
            var tags: [String: JSONValue] = [:]
            if case .map(let m)? = p["tags"] { for (k, v) in m { tags[k] = .string(v) } }
            // Provenance travels with the model.
            tags["mlhook_rule"] = .string(job.rule)
            tags["mlhook_event"] = .string(job.eventID)
            var body: JSONValue = ["name": .string(try s("name")), "mimeType": "application/octet-stream", "kvTags": .object(tags)]
            if let url = p["url"]?.string {
                body = body.setting("url", .string(url))
            } else {
                let run = try s("from_run"), exp = p["experiment"]?.string ?? ""
                body = body.setting("url", .string("aml://artifact/ExperimentRun/dcid.\(run)/\(p["path"]?.string ?? "outputs")"))
                    .setting("runId", .string(run)).setting("experimentName", .string(exp))
            }
            if let d = p["description"]?.string { body = body.setting("description", .string(d)) }
            let m = try await api.registerModel(body)
            return ["id": m["id"] ?? nil]
        case "score":
            guard let rule = live.snapshot.config.rules.first(where: { $0.name == job.rule }), job.actionIndex < rule.actions.count,
                  let ref = rule.actions[job.actionIndex].secret else { throw JobError("the rule's score action has no key") }
            let key = try SecretResolver().resolve(ref, key: "rules[\(job.rule)].actions[\(job.actionIndex)].score.key")
            guard let data = JSONValue(json: Array(try s("data").utf8)) else { throw JobError("score data is not JSON") }
            return try await api.score(uri: try s("uri"), key: key.text, data: data)
        default:
            throw JobError("unknown action \(job.action)")
        }
    }
}

/// A job that cannot be performed as planned.
struct JobError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
