import AzureML
import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Store
import Synchronization

/// Follows every watching job's Azure ML run to a terminal status (Completed, Failed, Canceled) and then ends
/// the job with its callbacks, in one transaction. Its state is the store's, so a restart resumes watching.
/// Runs superseded by a newer push to the same branch are canceled first.
struct RunWatcher: Sendable {
    let queue: any JobQueue & Inbox
    let live: LiveConfig
    let client: @Sendable () async throws -> any AzureMLClient
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
        let api = try await client()
        for job in superseded {
            guard let (experiment, id) = Self.run(of: job) else { continue }
            do { try await api.cancelRun(experiment: experiment, runID: id) } catch {
                logger.notice("cannot cancel superseded run \(id): \(error)", metadata: JobLog.meta(job))
            }
        }
        var finished = 0
        for job in watching {
            // Each job alone: one that cannot be read or finished does not hold back the others.
            do {
                if try await watch(job, api: api, superseded: superseded) { finished += 1 }
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
        try await queue.finishWatch(id: job.id, state: .dead, error: reason, result: job.result ?? "{}", callbacks: [])
        strikes.clear(job.id)
        logger.error("job parked: \(reason)", metadata: JobLog.meta(job))
        metrics.jobFinished(action: job.action, state: JobState.dead.rawValue, createdAt: job.createdAt)
    }

    /// Polls one job's run and finishes the job when the run is terminal. - Returns: whether it finished.
    private func watch(_ job: JobRecord, api: any AzureMLClient, superseded: [JobRecord]) async throws -> Bool {
        guard let (experiment, id) = Self.run(of: job), let started = JSONValue(json: Array((job.result ?? "").utf8)) else { return false }
        let run: JSONValue
        do {
            run = try await api.run(experiment: experiment, runID: id)
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
        let result = started.setting("status", .string(status)).setting("start", run["startTimeUtc"] ?? nil)
            .setting("end", run["endTimeUtc"] ?? nil)
        let wasSuperseded = status == "Canceled" && superseded.contains { $0.id == job.id }
        let error = status == "Completed" ? nil
            : (wasSuperseded ? "superseded by a newer push to the same branch" : run.value(at: "error.error.message")?.string ?? "the run ended \(status)")
        let final: JobState = status == "Completed" ? .succeeded : .failed
        let config = live.snapshot.config
        let event = try await AttemptEvent(inbox: queue, id: job.eventID, config: config).load()
        let callbacks = CallbackFormatter.callbacks(for: job, rule: config.rules.first { $0.name == job.rule }, event: event, state: final,
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

    /// The experiment and run id a `start_run` job recorded.
    static func run(of job: JobRecord) -> (experiment: String, runID: String)? {
        guard let r = JSONValue(json: Array((job.result ?? "").utf8)), let experiment = r["experiment"]?.string, let id = r["run_id"]?.string
        else { return nil }
        return (experiment, id)
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
