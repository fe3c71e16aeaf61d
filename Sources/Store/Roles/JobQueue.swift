import Foundation
import MLHookCore

/// The durable job queue: workers claim jobs with a lease, record each attempt, and the run watcher ends the
/// jobs whose Azure ML run reached a terminal status.
///
/// Backends evaluate the conditions the jobs carry (a rule's concurrency, `max_attempts`, a job's supersede
/// scope) inside their write transaction; they decide nothing else.
public protocol JobQueue: Sendable {
    /// Claims the oldest runnable job for `lease` seconds (a worker that dies loses it when the lease expires),
    /// skipping rules whose running jobs reached their concurrency, actions not in `actions` and jobs that used
    /// their `max_attempts`; counts the attempt. The record carries a fresh `leaseToken`: with it the worker renews
    /// the lease and ends the attempt; once the lease is lost, both are refused.
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
    /// - Parameters:
    ///   - countAttempt: false for an attempt cut short by shutdown: the job gets it back.
    ///   - leaseToken: The claim's token (fencing): when given, nothing is written unless the job is still running
    ///     under that very claim. Nil writes unconditionally (operators' tools and tests).
    /// - Returns: How many callbacks were not queued because their URL's `maxPerURL` was reached.
    /// - Throws: `StoreError` `.leaseLost` when the lease was lost (another worker owns the job now).
    @discardableResult
    func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                       callbacks: [NewCallback], countAttempt: Bool, leaseToken: String?) async throws -> Int

    /// Extends a running job's lease to `until`, if `leaseToken` still holds it (a long action renews while it runs).
    /// - Returns: false when the lease was lost: the worker must stop and write nothing.
    func renewLease(id: String, leaseToken: String, until: Date) async throws -> Bool

    /// Running jobs whose lease expired go back to the queue. - Returns: how many.
    @discardableResult
    func releaseExpiredLeases(now: Date) async throws -> Int

    /// Jobs waiting for their run to end, oldest first: those this store instance follows already and those nobody
    /// follows (or whose follower's hold ran out), each held for `lease` seconds from `now`. So each run is followed
    /// by one replica at a time, and another takes over within `lease` when that one dies.
    func watching(now: Date, lease: TimeInterval) async throws -> [JobRecord]

    /// Watching jobs whose run should be canceled (superseded by a newer push).
    func cancelRequested() async throws -> [JobRecord]

    /// Returns when jobs may have become runnable, or after the store's poll interval (an idle worker's wait):
    /// SQLite polls every 100 ms; PostgreSQL wakes at a NOTIFY from any replica, else after 1-2 s.
    func waitForWork() async

    /// Ends a watching job when its run is terminal, queueing its callbacks in the same transaction (only if
    /// the job was still watching).
    /// - Returns: How many callbacks were refused by `maxPerURL`.
    @discardableResult
    func finishWatch(id: String, state: JobState, error: String?, result: String, callbacks: [NewCallback]) async throws -> Int

    /// Ends a watching job as parked (dead, `parked`, with the reason and no callbacks: what failed may be the
    /// callbacks), when its run cannot be read or its outcome cannot be recorded.
    func parkWatch(id: String, reason: String) async throws
}

extension JobQueue {
    public func waitForWork() async {
        try? await Task.sleep(for: .milliseconds(100))
    }

    /// Ends an attempt that counts, with no callbacks.
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date) async throws {
        try await finishAttempt(id: id, state: state, error: error, result: result, retryAt: retryAt, startedAt: startedAt, now: now,
                                callbacks: [], countAttempt: true, leaseToken: nil)
    }

    /// Ends an attempt that counts (fenced by `leaseToken` when given).
    @discardableResult
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                              callbacks: [NewCallback], leaseToken: String? = nil) async throws -> Int {
        try await finishAttempt(id: id, state: state, error: error, result: result, retryAt: retryAt, startedAt: startedAt, now: now,
                                callbacks: callbacks, countAttempt: true, leaseToken: leaseToken)
    }

    /// Ends a watching job with no callbacks.
    public func finishWatch(id: String, state: JobState, error: String?, result: String) async throws {
        try await finishWatch(id: id, state: state, error: error, result: result, callbacks: [])
    }
}
