import Foundation
import MLHookCore

/// The durable job queue: workers claim jobs with a lease, record each attempt, and the run watcher ends the
/// jobs whose Azure ML run reached a terminal status.
///
/// Backends evaluate the conditions the jobs carry (a rule's concurrency, `max_attempts`, a job's supersede
/// scope) inside their write transaction; they decide nothing else.
public protocol JobQueue: Sendable {
    /// Claims the oldest runnable job for `lease` seconds (a worker that dies loses it when the lease expires),
    /// skipping rules whose running jobs reached their concurrency and actions not in `actions`; counts the attempt.
    /// - Parameters:
    ///   - now: The time the claim is made at (runnable means `next attempt <= now`).
    ///   - lease: Seconds the claim holds before another worker may take the job.
    ///   - ruleLimits: Rule name to the most jobs of it running at once.
    ///   - actions: The action names this worker performs.
    /// - Returns: The claimed job, or nil when nothing is runnable.
    func claimJob(now: Date, lease: TimeInterval, ruleLimits: [String: Int], actions: Set<String>) async throws -> JobRecord?

    /// Ends an attempt: `succeeded`/`failed`/`dead` are final, `watching` hands the job to the run watcher,
    /// `queued` with `retryAt` schedules another try. `callbacks` are queued in the same transaction, so a
    /// crash cannot finish a job and lose its callbacks.
    /// - Parameter countAttempt: false for an attempt cut short by shutdown: the job gets it back.
    /// - Returns: How many callbacks were not queued because their URL's `maxPerURL` was reached.
    @discardableResult
    func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                       callbacks: [NewCallback], countAttempt: Bool) async throws -> Int

    /// Running jobs whose lease expired go back to the queue. - Returns: how many.
    @discardableResult
    func releaseExpiredLeases(now: Date) async throws -> Int

    /// Jobs waiting for their run to end, oldest first.
    func watching() async throws -> [JobRecord]

    /// Watching jobs whose run should be canceled (superseded by a newer push).
    func cancelRequested() async throws -> [JobRecord]

    /// Ends a watching job when its run is terminal, queueing its callbacks in the same transaction (only if
    /// the job was still watching).
    /// - Returns: How many callbacks were refused by `maxPerURL`.
    @discardableResult
    func finishWatch(id: String, state: JobState, error: String?, result: String, callbacks: [NewCallback]) async throws -> Int
}

extension JobQueue {
    /// Ends an attempt that counts, with no callbacks.
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date) async throws {
        try await finishAttempt(id: id, state: state, error: error, result: result, retryAt: retryAt, startedAt: startedAt, now: now,
                                callbacks: [], countAttempt: true)
    }

    /// Ends an attempt that counts.
    @discardableResult
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                              callbacks: [NewCallback]) async throws -> Int {
        try await finishAttempt(id: id, state: state, error: error, result: result, retryAt: retryAt, startedAt: startedAt, now: now,
                                callbacks: callbacks, countAttempt: true)
    }

    /// Ends a watching job with no callbacks.
    public func finishWatch(id: String, state: JobState, error: String?, result: String) async throws {
        try await finishWatch(id: id, state: state, error: error, result: result, callbacks: [])
    }
}
