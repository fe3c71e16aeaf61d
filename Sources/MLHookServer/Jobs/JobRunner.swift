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
/// `start_run` fetches the event's commit with git, zips the rule's `dir`, starts the run with a run id derived
/// from the job (so a retried start never makes a second run) and leaves the job `watching`; `watchOne()`
/// follows watching jobs until their run is terminal, also after a restart.
public struct JobRunner: Service {
    let store: any JobQueue & Inbox
    let live: LiveConfig
    let client: @Sendable () async throws -> HTTPAzureMLClient
    let logger: Logger
    let workers: Int
    let lease: TimeInterval
    let baseBackoff: TimeInterval
    let maxBackoff: TimeInterval
    let now: @Sendable () -> Date
    let git: GitSource?
    let metrics: MLHookMetrics

    /// Slack accepts at most 5 responses per response_url.
    static let slackResponseLimit = 5

    /// Actions this runner performs.
    static let supported: Set<String> = ["scale_compute", "register_model", "delete_model", "cancel_run", "score", "start_run"]

    public init(store: any JobQueue & Inbox, live: LiveConfig, client: @escaping @Sendable () async throws -> HTTPAzureMLClient,
                logger: Logger, workers: Int = 4, lease: TimeInterval = 300, baseBackoff: TimeInterval = 2, maxBackoff: TimeInterval = 600,
                git: GitSource? = nil, now: @escaping @Sendable () -> Date = { Date() }, metrics: MLHookMetrics = MLHookMetrics()) {
        self.git = git
        self.metrics = metrics
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
            group.addTask { await self.watchLoop() }
        }
    }

    func watchLoop() async {
        while !Task.isCancelledOrShuttingDown {
            do { _ = try await watchOne() } catch { logger.error("run watcher: \(error)") }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
        }
    }

    /// Polls every watching job's run once; finishes the jobs whose run is terminal.
    /// - Returns: How many jobs finished.
    public func watchOne() async throws -> Int {
        // Superseded runs are canceled; the watch below then sees them end Canceled.
        let superseded = try await store.cancelRequested()
        for job in superseded {
            guard let r = JSONValue(json: Array((job.result ?? "").utf8)), let exp = r["experiment"]?.string, let id = r["run_id"]?.string else { continue }
            do { try await client().cancelRun(experiment: exp, runID: id) } catch {
                logger.notice("cannot cancel superseded run \(id): \(error)", metadata: Self.meta(job))
            }
        }
        var finished = 0
        for job in try await store.watching() {
            guard let r = JSONValue(json: Array((job.result ?? "").utf8)), let exp = r["experiment"]?.string, let id = r["run_id"]?.string else { continue }
            let run: JSONValue
            do { run = try await client().run(experiment: exp, runID: id) } catch {
                logger.notice("run watcher: cannot read run \(id): \(error)", metadata: Self.meta(job))
                continue
            }
            guard let status = run["status"]?.string, ["Completed", "Failed", "Canceled"].contains(status) else { continue }
            let result = r.setting("status", .string(status)).setting("start", run["startTimeUtc"] ?? nil).setting("end", run["endTimeUtc"] ?? nil)
            let wasSuperseded = status == "Canceled" && superseded.contains { $0.id == job.id }
            let error = status == "Completed" ? nil
                : (wasSuperseded ? "superseded by a newer push to the same branch" : run.value(at: "error.error.message")?.string ?? "the run ended \(status)")
            let final: JobState = status == "Completed" ? .succeeded : .failed
            let refused = try await store.finishWatch(id: job.id, state: final, error: error, result: result.text,
                                                      callbacks: try await callbacks(for: job, state: final, result: result, error: error))
            noteRefused(refused, job)
            var meta = Self.meta(job)
            meta["run_id"] = .string(id)
            logger.info("run \(status)", metadata: meta)
            metrics.jobFinished(action: job.action, state: final.rawValue, createdAt: job.createdAt)
            metrics.runFinished(status: status, duration: Self.runDuration(run))
            finished += 1
        }
        return finished
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
        var meta = Self.meta(job)
        meta["rule"] = .string(job.rule)
        meta["action"] = .string(job.action)
        meta["attempt"] = .stringConvertible(job.attempts)
        let clock = ContinuousClock.now
        do {
            let result = try await perform(job)
            // A started run is watched to its end; every other action is done now.
            let state: JobState = job.action == "start_run" ? .watching : .succeeded
            // A started run gets its pending statuses now, a finished action all its callbacks, in the same transaction.
            let refused = try await store.finishAttempt(id: job.id, state: state, error: nil, result: result.text, retryAt: nil, startedAt: started,
                                                        now: now(), callbacks: try await callbacks(for: job, state: state, result: result, error: nil,
                                                                                                   onlyPending: state == .watching))
            logger.info(state == .watching ? "run started" : "job succeeded", metadata: meta)
            noteRefused(refused, job)
            metrics.jobAttempt(action: job.action, outcome: state.rawValue, duration: ContinuousClock.now - clock)
            if state == .succeeded { metrics.jobFinished(action: job.action, state: state.rawValue, createdAt: job.createdAt) }
        } catch where Task.isCancelled {
            // Shutdown ran past its grace period: the job goes back to the queue, for the next start. The write
            // runs in a task of its own, which the cancellation does not reach. An attempt interrupted this way
            // does not count against max_attempts.
            meta["error"] = .string("\(error)")
            let (store, id, at) = (self.store, job.id, now())
            _ = try await Task {
                try await store.finishAttempt(id: id, state: .queued, error: "interrupted by shutdown; runs again at the next start",
                                              result: nil, retryAt: at, startedAt: started, now: at, callbacks: [], countAttempt: false)
            }.value
            logger.notice("job interrupted by shutdown; it stays queued", metadata: meta)
            metrics.jobAttempt(action: job.action, outcome: "interrupted", duration: ContinuousClock.now - clock)
        } catch {
            let retryable = (error as? AzureMLError)?.isRetryable ?? false
            let message = "\(error)"
            meta["error"] = .string(message)
            if retryable && job.attempts < job.maxAttempts {
                let backoff = Double.random(in: 0...min(maxBackoff, baseBackoff * pow(2, Double(job.attempts - 1))))
                try await store.finishAttempt(id: job.id, state: .queued, error: message, result: nil,
                                              retryAt: now().addingTimeInterval(backoff), startedAt: started, now: now())
                logger.notice("job will be retried", metadata: meta)
                metrics.jobAttempt(action: job.action, outcome: "retry", duration: ContinuousClock.now - clock)
            } else {
                let state: JobState = retryable ? .dead : .failed
                let refused = try await store.finishAttempt(id: job.id, state: state, error: message, result: nil, retryAt: nil, startedAt: started,
                                                            now: now(), callbacks: try await callbacks(for: job, state: state, result: nil, error: message))
                logger.error("job \(state.rawValue)", metadata: meta)
                noteRefused(refused, job)
                metrics.jobAttempt(action: job.action, outcome: state.rawValue, duration: ContinuousClock.now - clock)
                metrics.jobFinished(action: job.action, state: state.rawValue, createdAt: job.createdAt)
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
        case "start_run":
            return try await startRun(job, p, api)
        case "delete_model":
            try await api.deleteModel(try s("id"))
            return ["deleted": .string(try s("id"))]
        case "cancel_run":
            try await api.cancelRun(experiment: try s("experiment"), runID: try s("run_id"))
            return ["canceled": .string(try s("run_id"))]
        case "register_model":
            var tags: [String: JSONValue] = [:]
            if case .map(let m)? = p["tags"] { for (k, v) in m { tags[k] = .string(v) } }
            // Provenance travels with the model: rule, event, delivery, repository and commit.
            tags["mlhook_rule"] = .string(job.rule)
            tags["mlhook_event"] = .string(job.eventID)
            tags["mlhook_job"] = .string(job.id)
            // A retried job whose earlier attempt registered the model (its answer lost) does not register twice.
            if job.attempts > 1, let done = try await api.models(name: try s("name")).first(where: { $0.value(at: "kvTags.mlhook_job")?.string == job.id }) {
                return ["id": done["id"] ?? nil]
            }
            if let stored = try await store.event(id: job.eventID) {
                tags["mlhook_delivery_id"] = .string(stored.summary.deliveryID)
                if let e = EventPlanner.normalize(stored, config: live.snapshot.config) {
                    if let repo = e.repository?.fullName { tags["mlhook_repository"] = .string(repo) }
                    if let sha = e.after, !sha.isEmpty { tags["mlhook_commit"] = .string(sha) }
                }
            }
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

extension JobRunner {
    /// Fetches the commit, zips `dir`, starts the run with the job's run id.
    func startRun(_ job: JobRecord, _ p: [String: ParameterValue], _ api: HTTPAzureMLClient) async throws -> JSONValue {
        guard let git else { throw JobError("start_run needs a git cache (the job runner was built without one)") }
        var url = p["repository"]?.string
        var commit = p["ref"]?.string
        if url == nil || commit == nil, let stored = try await store.event(id: job.eventID),
           let e = EventPlanner.normalize(stored, config: live.snapshot.config) {
            url = url ?? e.repository?.cloneURL
            commit = commit ?? e.after
        }
        guard let url, let commit, !commit.isEmpty else {
            throw JobError("start_run needs a commit: the event carries no repository and the action sets no repository/ref")
        }
        var credentials: GitSource.Credentials?
        if let rule = live.snapshot.config.rules.first(where: { $0.name == job.rule }), job.actionIndex < rule.actions.count,
           let ref = rule.actions[job.actionIndex].secret {
            let token = try SecretResolver().resolve(ref, key: "rules[\(job.rule)].actions[\(job.actionIndex)].start_run.token")
            credentials = GitSource.Credentials(user: p["git_user"]?.string ?? "x-access-token", token: token)
        }
        let (zip, pinned) = try await git.zip(url: url, commit: commit, folder: p["dir"]?.string ?? ".", credentials: credentials)
        var configuration: JSONValue = ["Script": .string(p["script"]?.string ?? ""), "Target": .string(p["compute"]?.string ?? "")]
        if case .list(let args)? = p["arguments"] { configuration = configuration.setting("Arguments", .array(args.map { .string($0) })) }
        if case .map(let env)? = p["environment"] {
            configuration = configuration.setting("Environment", ["EnvironmentVariables": .object(env.mapValues { .string($0) })])
        }
        if let limit = p["max_run_seconds"]?.int { configuration = configuration.setting("MaxRunDurationSeconds", .number(Double(limit))) }
        let experiment = p["experiment"]?.string ?? "default"
        let runID = "mlhook_" + job.id
        let id = try await api.startRun(experiment: experiment, zip: zip, definition: ["Configuration": configuration], runID: runID)
        return ["experiment": .string(experiment), "run_id": .string(id), "commit": .string(pinned)]
    }
}

extension JobRunner {
    /// The metadata every log line about a job carries.
    static func meta(_ job: JobRecord) -> Logger.Metadata {
        var m: Logger.Metadata = ["job_id": .string(job.id), "event_id": .string(job.eventID)]
        if let d = job.deliveryID { m["delivery_id"] = .string(d) }
        return m
    }

    /// A run's start-to-end time from its ISO 8601 timestamps.
    static func runDuration(_ run: JSONValue) -> Duration? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        func date(_ k: String) -> Date? {
            guard let s = run[k]?.string else { return nil }
            return f.date(from: s) ?? ISO8601DateFormatter().date(from: s)
        }
        guard let start = date("startTimeUtc"), let end = date("endTimeUtc"), end >= start else { return nil }
        return .milliseconds(Int64(end.timeIntervalSince(start) * 1000))
    }

    /// Logs the callbacks the store refused (Slack's 5 responses per response_url were used).
    func noteRefused(_ count: Int, _ job: JobRecord) {
        guard count > 0 else { return }
        logger.notice("slack: the command's response_url already has \(Self.slackResponseLimit) responses; this job's is not sent",
                      metadata: Self.meta(job))
    }

    /// The rule's callbacks for a job: when it is finished, every target; when a run has just started
    /// (`onlyPending`), the `pending` commit status of `github_status` targets.
    func callbacks(for job: JobRecord, state: JobState, result: JSONValue?, error: String?, onlyPending: Bool = false) async throws -> [NewCallback] {
        guard let rule = live.snapshot.config.rules.first(where: { $0.name == job.rule }), !rule.callbacks.isEmpty else { return [] }
        var out: [NewCallback] = []
        var event: JSONValue = ["id": .string(job.eventID)]
        var provenance: JSONValue = [:]
        var normalized: NormalizedEvent?
        if let stored = try await store.event(id: job.eventID) {
            event = ["id": .string(job.eventID), "source": .string(stored.summary.source), "kind": .string(stored.summary.kind),
                     "delivery_id": .string(stored.summary.deliveryID)]
            normalized = EventPlanner.normalize(stored, config: live.snapshot.config)
            if let e = normalized {
                provenance = ["repository": e.repository.map { .string($0.fullName) } ?? nil, "commit": e.after.map(JSONValue.string) ?? nil,
                              "ref": e.ref.map(JSONValue.string) ?? nil, "actor": e.actor.map(JSONValue.string) ?? nil]
            }
        }
        let body: JSONValue = [
            "type": "mlhook.job.finished", "timestamp": .string(Date().formatted(.iso8601)),
            "data": ["job_id": .string(job.id), "status": .string(state.rawValue), "rule": .string(job.rule), "action": .string(job.action),
                     "event": event, "result": result ?? nil, "error": error.map(JSONValue.string) ?? nil, "provenance": provenance],
        ]
        let runID = result?["run_id"]?.string
        for (i, target) in rule.callbacks.enumerated() {
            switch target {
            case .url(let url, _):
                guard !onlyPending else { continue }
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, kind: "url", url: url, body: body.text))
            case .slack:
                // Slack's response_url takes at most 5 responses within 30 minutes: one per finished job.
                guard !onlyPending, let responseURL = normalized?.command?.responseURL else { continue }
                let line = normalized?.command?.line ?? job.rule
                let mark = state == .succeeded ? "✅" : "❌"
                var text = "\(mark) `\(line)`: \(job.action) \(state.rawValue)"
                if let runID { text += " (run \(runID)" + (result?["status"]?.string.map { ", \($0)" } ?? "") + ")" }
                if let error { text += "\n> " + String(error.prefix(300)) }
                let message: JSONValue = ["response_type": "in_channel", "text": .string(text)]
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, kind: "slack",
                                       url: responseURL, body: message.text, maxPerURL: Self.slackResponseLimit))
            case .githubStatus(_, let apiBase, let context):
                guard let repo = normalized?.repository?.fullName, let sha = normalized?.after, !sha.isEmpty else { continue }
                let ghState = onlyPending ? "pending" : (state == .succeeded ? "success" : "failure")
                var description = onlyPending ? "run \(runID ?? "") started" : "\(job.action) \(state.rawValue)"
                if let status = result?["status"]?.string, !onlyPending { description += " (\(status))" }
                let status: JSONValue = ["state": .string(ghState), "context": .string(context), "description": .string(String(description.prefix(140)))]
                // The pending status and the final one are two deliveries of the same target.
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, phase: onlyPending ? .pending : .final,
                                       kind: "github_status", url: "\(apiBase)/repos/\(repo)/statuses/\(sha)", body: status.text))
            }
        }
        return out
    }
}

/// A job that cannot be performed as planned.
struct JobError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
