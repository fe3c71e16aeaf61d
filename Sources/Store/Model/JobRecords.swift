import Foundation
import MLHookCore

/// Which jobs to list. `before` pages: only rows older than the one with that id.
public struct JobQuery: Sendable, Equatable {
    /// At most this many (nil: all).
    public var limit: Int?
    /// Only jobs in this state.
    public var state: JobState?
    /// Only jobs of this rule.
    public var rule: String?
    /// Only jobs of this event.
    public var eventID: String?
    /// Only jobs created before the one with this id (the next page).
    public var before: String?
    public init(limit: Int? = nil, state: JobState? = nil, rule: String? = nil, eventID: String? = nil, before: String? = nil) {
        self.limit = limit; self.state = state; self.rule = rule; self.eventID = eventID; self.before = before
    }
}

/// Where a job is in its life.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, watching, succeeded, failed, dead
}

/// What `cancelJob` did.
public enum JobCancellation: Sendable, Equatable, Codable {
    /// It was queued: it failed now, with the reason, and never runs.
    case canceled
    /// It was running or watching: its run is being canceled; the job ends when the run has.
    case requested
    /// It had ended already, in this state.
    case ended(JobState)
    case notFound
}

/// A job to create: one planned action of one event.
public struct NewJob: Sendable, Equatable {
    /// `job_…`, minted when the job is planned (a job that already exists under the idempotency key keeps its id).
    public var id: String
    /// `{rule}#{action index}@{event identity}`: the same key never makes a second job.
    public var idempotencyKey: String
    /// The event that made the job.
    public var eventID: String
    /// The rule that planned it.
    public var rule: String
    /// The action's position in the rule.
    public var actionIndex: Int
    /// The action type (`start_run`, `scale_compute`, …).
    public var action: String
    /// The rendered parameters (JSON).
    public var parameters: String
    /// Attempts before a retryable failure makes the job dead.
    public var maxAttempts: Int
    /// With `supersede`: `repository@branch`. When this job is created, the older jobs of its rule and scope
    /// end: queued ones fail with `supersedeReason`, running or watching ones get their run canceled.
    public var supersedeScope: String?
    /// The event's facts and the rule's callback targets as planned (`JobContext.text`).
    public var context: String?

    /// What an older job of the same rule and scope records when this one supersedes it.
    public var supersedeReason: String { "superseded by job \(id)" }

    public init(id: String = EventID.make("job"), idempotencyKey: String, eventID: String, rule: String, actionIndex: Int, action: String,
                parameters: String, maxAttempts: Int, supersedeScope: String? = nil, context: String? = nil) {
        self.id = id
        self.context = context
        self.supersedeScope = supersedeScope
        self.idempotencyKey = idempotencyKey
        self.eventID = eventID
        self.rule = rule
        self.actionIndex = actionIndex
        self.action = action
        self.parameters = parameters
        self.maxAttempts = maxAttempts
    }
}

/// A stored job.
public struct JobRecord: Sendable, Equatable, Codable {
    /// `job_…`.
    public var id: String
    /// `{rule}#{action index}@{event identity}`.
    public var idempotencyKey: String
    /// The event that made the job.
    public var eventID: String
    /// The rule that planned it.
    public var rule: String
    /// The action's position in the rule.
    public var actionIndex: Int
    /// The action type (`start_run`, `scale_compute`, …).
    public var action: String
    /// The rendered parameters (JSON).
    public var parameters: String
    /// Where the job is.
    public var state: JobState
    /// Attempts started so far.
    public var attempts: Int
    /// Attempts before a retryable failure makes the job dead.
    public var maxAttempts: Int
    /// When it was planned.
    public var createdAt: Date
    /// Why the last attempt failed, or why the job was superseded.
    public var lastError: String?
    /// What the action produced (JSON), once it succeeded.
    public var result: String?
    /// The delivery id of the job's event.
    public var deliveryID: String?
    /// How many times an operator retried it (`jobs retry`): a run-starting action names its run after the job and
    /// this count, so a retry starts a new run while an automatic retry of the same attempt finds the one it started.
    public var retries: Int = 0
    /// What the job carries from its planning (`JobContext`); nil for jobs planned before it was kept. Not listed.
    public var context: String? = nil
    /// Whether it was parked: ended dead because it could not go on (its lease expired on every attempt, its run
    /// could not be read, its outcome could not be recorded), as opposed to failing. `last_error` says why.
    public var parked = false
    /// The fencing token of the claim that returned this record: renewing the lease and ending the attempt need
    /// it, so a worker whose lease was lost (another worker claimed the job since) writes nothing. Not listed.
    public var leaseToken: String? = nil
    /// The store instance that holds the claim, or follows the watching job's run (nil once the job has ended).
    /// Not listed.
    public var leaseOwner: String? = nil

    enum CodingKeys: String, CodingKey {
        case id, rule, action, parameters, state, attempts, result
        case idempotencyKey = "idempotency_key", eventID = "event_id", actionIndex = "action_index", deliveryID = "delivery_id"
        case maxAttempts = "max_attempts", createdAt = "created_at", lastError = "last_error", retries, parked
    }
}

/// One attempt at a job.
public struct JobAttempt: Sendable, Equatable, Codable {
    /// The attempt number, from 1.
    public var number: Int
    /// When it started.
    public var startedAt: Date
    /// When it ended.
    public var endedAt: Date
    /// The state it left the job in (`queued` for a retry).
    public var outcome: JobState
    /// Why it failed.
    public var error: String?
}

extension JobCancellation {
    /// The error a job canceled with `mlhook jobs cancel` (or the admin API) ends with.
    public static let operatorReason = "canceled by an operator (mlhook jobs cancel)"
}

/// What a job carries from its planning: the event's facts and a snapshot of its rule's callback targets (where each
/// secret comes from, never a secret), so a reload changes what new events do, not what planned jobs report.
public struct JobContext: Sendable, Equatable, Codable {
    public var facts: EventFacts
    public var callbacks: [PlannedCallbackTarget]

    public init(facts: EventFacts, callbacks: [PlannedCallbackTarget]) {
        self.facts = facts
        self.callbacks = callbacks
    }

    /// As stored in the job's `context` column.
    public var text: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// From the stored text; nil for jobs planned before contexts were kept.
    public init?(text: String?) {
        guard let text, let c = try? JSONDecoder().decode(JobContext.self, from: Data(text.utf8)) else { return nil }
        self = c
    }
}

/// A rule's callback target as planned: its address and where its secret comes from.
public enum PlannedCallbackTarget: Sendable, Equatable, Codable {
    case url(url: String, credential: CallbackCredential)
    case slack
    case githubStatus(token: CallbackCredential, apiBase: String, context: String)
}
