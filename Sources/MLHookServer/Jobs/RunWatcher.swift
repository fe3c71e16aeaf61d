import AzureML
import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Store
import Synchronization

/// Follows every watching job's Azure ML run to a terminal status (Completed, Failed, Canceled) and then ends
/// the job with its callbacks, in one transaction. Its state is the store's, so a restart resumes watching.
/// Runs whose cancel was requested (superseded by a newer push to the same branch, or `mlhook jobs cancel`) are
/// canceled first, and their jobs end with the reason recorded then.
struct RunWatcher: Sendable {
    let queue: any JobQueue & Inbox
    let live: LiveConfig
    let client: @Sendable () async throws -> any AzureMLClient
    /// The clients of `azureml.workspaces`, for runs started in a named workspace.
    var workspaces = WorkspaceClients()
    let logger: Logger
    let now: @Sendable () -> Date
    let metrics: MLHookMetrics
    /// Consecutive failures per job, so one bad job is parked instead of failing every pass for ever.
    let strikes = Strikes()
    /// How many passes in a row a job's outcome may fail to be recorded before it is parked.
    var maxFinishFailures = 5
    /// How long this replica holds the runs it follows: another replica takes them over this long after it dies.
    var watchLease: TimeInterval = 15
    /// How long a run's status may stay unreadable before its job is parked.
    var unreadableRunLimit: TimeInterval = 3600

    /// Polls every watching job's run once, about every second, until shutdown.
    func run() async {
        while !Task.isCancelledOrShuttingDown {
            do { _ = try await watchOne() } catch { logger.error("run watcher: \(error)") }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
        }
    }

    /// Polls every watching job's run once; finishes the jobs whose run is terminal.
    /// - Returns: How many jobs finished.
    func watchOne() async throws -> Int {
        // Superseded runs are canceled; the watch below then sees them end Canceled.
        let watching = try await queue.watching(now: now(), lease: watchLease)
        guard !watching.isEmpty else { return 0 }
        // Only the runs this replica follows: another replica cancels its own.
        let held = Set(watching.map(\.id))
        let superseded = try await queue.cancelRequested().filter { held.contains($0.id) }
        let defaultClient = try await client()
        let config = live.snapshot.config
        /// The client of the workspace a job's run was started in.
        func api(for run: RunReference) throws -> any AzureMLClient {
            guard let name = run.workspace else { return defaultClient }
            return try workspaces.client(name, config: config)
        }
        for job in superseded {
            guard let followed = Self.followed(job) else { continue }
            let run = followed.run
            do {
                let api = try api(for: run)
                switch run.api {
                case .v1: try await api.cancelRun(experiment: run.experiment, runID: run.id)
                case .v2: try await api.cancelJob(name: run.id)
                }
            } catch {
                logger.notice("cannot cancel run \(run.id): \(error)", metadata: JobLog.meta(job))
            }
        }
        var finished = 0
        for job in watching {
            // Each job alone: one that cannot be read or finished does not hold back the others.
            do {
                // A job whose result names no run is not watched (it cannot be: there is nothing to read).
                guard let followed = Self.followed(job) else { continue }
                if try await watch(job, followed, api: try api(for: followed.run), superseded: superseded) { finished += 1 }
                strikes.recorded(job.id)
            } catch let error as StoreError where error.isRetryable {
                // The store, not this job: nothing to hold against it.
                logger.error("run watcher: job \(job.id) could not be finished: \(error)", metadata: JobLog.meta(job))
            } catch {
                let count = strikes.add(job.id)
                logger.error("run watcher: job \(job.id) could not be finished (\(count) of \(maxFinishFailures)): \(error)", metadata: JobLog.meta(job))
                if count >= maxFinishFailures {
                    try await park(job, Parked.reason("its outcome could not be recorded in \(count) tries (\(error))"))
                }
            }
        }
        return finished
    }

    /// Ends a job as parked (dead, with the reason), with no callbacks: what failed may be the callbacks.
    private func park(_ job: JobRecord, _ reason: String) async throws {
        try await queue.parkWatch(id: job.id, reason: reason)
        strikes.clear(job.id)
        logger.error("job parked: \(reason)", metadata: JobLog.meta(job))
        metrics.jobFinished(action: job.action, state: JobState.dead.rawValue, createdAt: job.createdAt)
    }

    /// Polls one job's run and finishes the job when the run is terminal. - Returns: whether it finished.
    private func watch(_ job: JobRecord, _ followed: Followed, api: any AzureMLClient, superseded: [JobRecord]) async throws -> Bool {
        let (reference, started) = (followed.run, followed.started)
        let id = reference.id
        let run: JSONValue
        do {
            switch reference.api {
            case .v1: run = try await api.run(experiment: reference.experiment, runID: id)
            case .v2: run = Self.runView(ofJob: try await api.job(name: id))
            }
            strikes.readable(job.id)
        } catch {
            logger.notice("run watcher: cannot read run \(id): \(error)", metadata: JobLog.meta(job))
            let since = strikes.unreadable(job.id, at: now())
            if now().timeIntervalSince(since) >= unreadableRunLimit {
                try await park(job, Parked.reason("its run \(id) could not be read for \(Int(unreadableRunLimit)) s (\(error))"))
            }
            return false
        }
        guard let status = run["status"]?.string, ["Completed", "Failed", "Canceled"].contains(status) else { return false }
        var result = started.setting("status", .string(status)).setting("start", run["startTimeUtc"] ?? nil)
            .setting("end", run["endTimeUtc"] ?? nil)
        if let d = Self.runDuration(run) { result = result.setting("duration_seconds", .number(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)) }
        if reference.api == .v2 {
            if let studio = run["studioUrl"]?.string {
                var linked = reference
                linked.studioURL = studio
                result = result.setting("studio_url", .string(studio)).setting("run", linked.json)
            }
        }
        // The action's own step once its run has ended (submit_job's register_model), before the job is finished.
        if let type = ActionType(rawValue: job.action) {
            let ended = RunEnding(job: job, started: started, run: reference, status: status, client: api)
            for (key, value) in try await ActionRegistry.action(for: type).onRunFinished(ended) { result = result.setting(key, value) }
        }
        let wasSuperseded = status == "Canceled" && superseded.contains { $0.id == job.id }
        let error = status == "Completed" ? nil
            : (wasSuperseded ? job.lastError ?? "canceled" : run.value(at: "error.error.message")?.string ?? "the run ended \(status)")
        let final: JobState = status == "Completed" ? .succeeded : .failed
        let config = live.snapshot.config
        let callbacks = try await CallbackFormatter.callbacks(
            for: job, config: config, loadEvent: { try await AttemptEvent(inbox: queue, id: job.eventID, config: config).load() }, state: final,
            result: result, error: error, phase: .final, now: now())
        let refused = try await queue.finishWatch(id: job.id, state: final, error: error, result: result.text, callbacks: callbacks)
        JobLog.noteRefused(refused, job, logger: logger)
        var meta = JobLog.meta(job)
        meta["run_id"] = .string(id)
        logger.info("run \(status)", metadata: meta)
        metrics.jobFinished(action: job.action, state: final.rawValue, createdAt: job.createdAt)
        metrics.runFinished(status: status, duration: Self.runDuration(run))
        return true
    }

    /// A watching job's result as its action recorded it, read once per pass, and the run or job it names.
    struct Followed {
        let run: RunReference
        let started: JSONValue
    }

    /// The run or job a `start_run` or `submit_job` job recorded, with the whole result.
    static func followed(_ job: JobRecord) -> Followed? {
        guard let r = JSONValue(json: Array((job.result ?? "").utf8)), let run = RunReference(result: r) else { return nil }
        return Followed(run: run, started: r)
    }

    /// A v2 job in the shape the watcher reads v1 runs in: `status`, `startTimeUtc`, `endTimeUtc`, `error`, and its
    /// studio URL. v2 statuses other than Completed, Failed and Canceled (NotResponding and Paused included: a paused
    /// or silent job may go on) keep it watched.
    static func runView(ofJob job: JSONValue) -> JSONValue {
        let v = CommandJobView(job)
        var run: JSONValue = ["status": .string(v.status), "startTimeUtc": v.startTime.map(JSONValue.string) ?? nil,
                              "endTimeUtc": v.endTime.map(JSONValue.string) ?? nil, "studioUrl": v.studioURL.map(JSONValue.string) ?? nil]
        if let message = v.errorMessage { run = run.setting("error", ["error": ["message": .string(message)]]) }
        return run
    }

    /// A run's start-to-end time from its ISO 8601 timestamps.
    static func runDuration(_ run: JSONValue) -> Duration? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        func date(_ k: String) -> Date? {
            guard let s = run[k]?.string else { return nil }
            // Azure writes a zone (Z); a time without one (older aml-local records) is UTC, as the service means it.
            return f.date(from: s) ?? ISO8601DateFormatter().date(from: s) ?? f.date(from: s + "Z") ?? ISO8601DateFormatter().date(from: s + "Z")
        }
        guard let start = date("startTimeUtc"), let end = date("endTimeUtc"), end >= start else { return nil }
        return .milliseconds(Int64(end.timeIntervalSince(start) * 1000))
    }
}

/// Per-job failure counts and the time each job's run first failed to read, kept in memory: a restart starts them
/// again, which bounds the tries per process, and a parked job leaves them.
final class Strikes: Sendable {
    private let state = Mutex<(failures: [String: Int], unreadableSince: [String: Date])>(([:], [:]))

    /// Counts one more failure of `id`. - Returns: the count.
    func add(_ id: String) -> Int { state.withLock { s in s.failures[id, default: 0] += 1; return s.failures[id]! } }
    /// A pass over `id` went through: its failure count starts again.
    func recorded(_ id: String) { state.withLock { s in s.failures[id] = nil } }
    func clear(_ id: String) { state.withLock { s in s.failures[id] = nil; s.unreadableSince[id] = nil } }
    /// Notes that `id`'s run could not be read. - Returns: when it first could not.
    func unreadable(_ id: String, at now: Date) -> Date {
        state.withLock { s in
            if let since = s.unreadableSince[id] { return since }
            s.unreadableSince[id] = now
            return now
        }
    }
    func readable(_ id: String) { state.withLock { s in s.unreadableSince[id] = nil } }
}
