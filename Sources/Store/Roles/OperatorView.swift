import Foundation

/// What operators read and do: the CLI uses it on a store opened from the config, or over the admin API with
/// `--server` (`AdminClient`); `/ui` and `/metrics` read through it too.
public protocol OperatorView: Sendable {
    /// Events matching the query, newest first.
    func events(_ query: EventQuery) async throws -> [EventSummary]
    /// One event with its body, by id.
    func event(id: String) async throws -> StoredEvent?
    /// Jobs matching the query, newest first.
    func jobs(_ query: JobQuery) async throws -> [JobRecord]
    /// One job by id.
    func job(id: String) async throws -> JobRecord?
    /// The attempts of a job, oldest first: start, end, error.
    func attempts(jobID: String) async throws -> [JobAttempt]
    /// Makes a failed or dead job runnable again with a fresh set of attempts. - Returns: whether it was.
    func retryJob(id: String) async throws -> Bool
    /// Stops a job: a queued one fails now; a running or watching one has its run canceled (the watcher cancels it
    /// and the job ends when the run has). `reason` is the job's error. - Returns: what happened.
    func cancelJob(id: String, reason: String) async throws -> JobCancellation
    /// Callbacks matching the query, newest first.
    func callbacks(_ query: CallbackQuery) async throws -> [CallbackRecord]
    /// One callback by id.
    func callback(id: String) async throws -> CallbackRecord?
    /// Returns a dead-lettered (or delivered) callback to the queue. - Returns: whether it existed.
    func replayCallback(id: String) async throws -> Bool
}

/// What the status page and metrics read besides the listings.
public protocol StoreStatistics: Sendable {
    /// The planner's explanations of these events, by id (events not yet planned have none); bodies are not read.
    func explanations(ids: [String]) async throws -> [String: String]
    /// Jobs and callbacks per state, and events waiting to be planned.
    func counts() async throws -> StoreCounts
}

extension OperatorView {
    /// Events, newest first: at most `limit` (nil for all), only `source` when set.
    public func list(limit: Int?, source: String?) async throws -> [EventSummary] {
        try await events(EventQuery(limit: limit, source: source))
    }

    /// Jobs, newest first.
    public func jobs(limit: Int?, state: JobState?) async throws -> [JobRecord] {
        try await jobs(JobQuery(limit: limit, state: state))
    }

    /// Callbacks, newest first.
    public func callbacks(limit: Int?, state: CallbackState?) async throws -> [CallbackRecord] {
        try await callbacks(CallbackQuery(limit: limit, state: state))
    }
}

/// Every role of one store: what the composition root opens and hands out role by role.
public typealias MLHookStore = Inbox & JobQueue & CallbackOutbox & OperatorView & StoreStatistics & StoreTransfer
