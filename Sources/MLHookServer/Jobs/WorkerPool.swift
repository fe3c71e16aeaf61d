import AzureML
import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Store

/// Runs queued jobs: claims one with a lease, performs its action (`ActionRegistry`), records the attempt with
/// the job's callbacks in one transaction, and retries retryable failures with exponential backoff and jitter
/// (at most `maxBackoff`) until `max_attempts`, after which the job is dead. Non-retryable failures fail the
/// job at once. A `start_run` that succeeds leaves its job watching (`RunWatcher`).
struct WorkerPool: Sendable {
    let queue: any JobQueue & Inbox
    let live: LiveConfig
    let client: @Sendable () async throws -> any AzureMLClient
    /// The clients of `azureml.workspaces`, for actions that name one.
    var workspaces = WorkspaceClients()
    let logger: Logger
    let workers: Int
    let lease: TimeInterval
    let baseBackoff: TimeInterval
    let maxBackoff: TimeInterval
    let now: @Sendable () -> Date
    let git: GitSource?
    let metrics: MLHookMetrics

    /// `workers` loops, each claiming the next job when it is idle, until shutdown.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<workers { group.addTask { await self.loop() } }
        }
    }

    private func loop() async {
        var failures = 0
        while !Task.isCancelledOrShuttingDown {
            var worked = false
            do {
                worked = try await runOne()
                failures = 0
            } catch {
                // The store is unreachable, say: back off (up to 5 s) instead of failing ten times a second.
                failures += 1
                logger.error("job runner: \(error)")
                let pause = min(5, 0.1 * pow(2, Double(failures)))
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(pause)) }
                continue
            }
            if !worked { try? await cancelWhenGracefulShutdown { await queue.waitForWork() } }
        }
    }

    /// Claims and runs one job. - Returns: whether there was one.
    func runOne() async throws -> Bool {
        try await queue.releaseExpiredLeases(now: now())
        let config = live.snapshot.config
        let limits = Dictionary(config.rules.compactMap { r in r.concurrency.map { (r.name, $0) } }, uniquingKeysWith: { a, _ in a })
        guard let job = try await queue.claimJob(now: now(), lease: lease, ruleLimits: limits, actions: ActionRegistry.names) else { return false }
        let started = now()
        var meta = JobLog.meta(job)
        meta["rule"] = .string(job.rule)
        meta["action"] = .string(job.action)
        meta["attempt"] = .stringConvertible(job.attempts)
        let clock = ContinuousClock.now
        let event = AttemptEvent(inbox: queue, id: job.eventID, config: config)
        /// The job's callbacks for an outcome: from what it carries since planning (older jobs: the rule as configured
        /// now and the event the action read).
        func callbacks(_ state: JobState, _ result: JSONValue?, _ error: String?, phase: CallbackPhase = .final) async throws -> [NewCallback] {
            try await CallbackFormatter.callbacks(for: job, config: config, loadEvent: { try await event.load() }, state: state, result: result,
                                                  error: error, phase: phase, now: now())
        }
        do {
            guard let type = ActionType(rawValue: job.action) else { throw JobError("unknown action \(job.action)") }
            let action = ActionRegistry.action(for: type)
            let parameters = try ActionParameters(json: job.parameters)
            let workspace = parameters.string("workspace")
            let api: any AzureMLClient
            if let workspace { api = try workspaces.client(workspace, config: config) } else { api = try await client() }
            let context = ActionContext(job: job, client: api, config: config, event: event, git: git, logger: logger, workspace: workspace)
            // The lease is renewed while the action runs; if it is lost, the action is cancelled and nothing is written.
            let result = try await LeaseKeeper(queue: queue, lease: lease, now: now, logger: logger).run(job) {
                try await action.run(parameters, context)
            }
            // A started run is watched to its end; every other action is done now. A started run gets its pending
            // statuses now, a finished action all its callbacks, in the same transaction as the outcome.
            let state: JobState = action.startsRun ? .watching : .succeeded
            let queued = try await callbacks(state, result, nil, phase: state == .watching ? .pending : .final)
            let refused = try await queue.finishAttempt(id: job.id, state: state, error: nil, result: result.text, retryAt: nil,
                                                        startedAt: started, now: now(), callbacks: queued, leaseToken: job.leaseToken)
            logger.info(state == .watching ? "run started" : "job succeeded", metadata: meta)
            JobLog.noteRefused(refused, job, logger: logger)
            metrics.jobAttempt(action: job.action, outcome: state.rawValue, duration: ContinuousClock.now - clock)
            if state == .succeeded { metrics.jobFinished(action: job.action, state: state.rawValue, createdAt: job.createdAt) }
        } catch where Self.lostLease(error) {
            // Another worker owns the job now (this one's lease ran out): it writes nothing.
            meta["error"] = .string("\(error)")
            logger.warning("job lease lost; this worker's outcome is dropped", metadata: meta)
            metrics.jobAttempt(action: job.action, outcome: "lease_lost", duration: ContinuousClock.now - clock)
        } catch where Task.isCancelled {
            // Shutdown ran past its grace period: the job goes back to the queue, for the next start. The write
            // runs in a task of its own, which the cancellation does not reach. An attempt interrupted this way
            // does not count against max_attempts.
            meta["error"] = .string("\(error)")
            let (queue, id, at, token) = (self.queue, job.id, now(), job.leaseToken)
            _ = try await Task {
                try await queue.finishAttempt(id: id, state: .queued, error: "interrupted by shutdown; runs again at the next start",
                                              result: nil, retryAt: at, startedAt: started, now: at, callbacks: [], countAttempt: false,
                                              leaseToken: token)
            }.value
            logger.notice("job interrupted by shutdown; it stays queued", metadata: meta)
            metrics.jobAttempt(action: job.action, outcome: "interrupted", duration: ContinuousClock.now - clock)
        } catch {
            let retryable = (error as? AzureMLError)?.isRetryable ?? (error as? JobError)?.isRetryable ?? false
            let message = "\(error)"
            meta["error"] = .string(message)
            if retryable && job.attempts < job.maxAttempts {
                let backoff = Double.random(in: 0...min(maxBackoff, baseBackoff * pow(2, Double(job.attempts - 1))))
                try await queue.finishAttempt(id: job.id, state: .queued, error: message, result: nil,
                                              retryAt: now().addingTimeInterval(backoff), startedAt: started, now: now(), callbacks: [],
                                              leaseToken: job.leaseToken)
                logger.notice("job will be retried", metadata: meta)
                metrics.jobAttempt(action: job.action, outcome: "retry", duration: ContinuousClock.now - clock)
            } else {
                let state: JobState = retryable ? .dead : .failed
                let refused = try await queue.finishAttempt(id: job.id, state: state, error: message, result: nil, retryAt: nil, startedAt: started,
                                                            now: now(), callbacks: try await callbacks(state, nil, message),
                                                            leaseToken: job.leaseToken)
                logger.error("job \(state.rawValue)", metadata: meta)
                JobLog.noteRefused(refused, job, logger: logger)
                metrics.jobAttempt(action: job.action, outcome: state.rawValue, duration: ContinuousClock.now - clock)
                metrics.jobFinished(action: job.action, state: state.rawValue, createdAt: job.createdAt)
            }
        }
        return true
    }

    /// Whether `error` says this worker lost its job's lease (while the action ran, or refused at the write).
    static func lostLease(_ error: any Error) -> Bool {
        error is LeaseKeeper.LeaseLost || (error as? StoreError)?.code == .leaseLost
    }
}
