import Foundation
import MLHookCore

/// What operators read and do: the CLI uses it on the local store, or over the admin API with `--server`.
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
    /// Callbacks matching the query, newest first.
    func callbacks(_ query: CallbackQuery) async throws -> [CallbackRecord]
    /// One callback by id.
    func callback(id: String) async throws -> CallbackRecord?
    /// Returns a dead-lettered (or delivered) callback to the queue. - Returns: whether it existed.
    func replayCallback(id: String) async throws -> Bool
}

/// The durable inbox. Ingress depends on this protocol only, so a PostgreSQL implementation can replace
/// SQLite without touching it.
public protocol EventStore: OperatorView {
    /// Stores an event durably, or finds the earlier event with the same (source, delivery id).
    ///
    /// When this returns, the event is committed with the store's configured synchronous level; a caller may
    /// then acknowledge the delivery.
    /// With `plan`, the event is stored already planned: its verdict and `jobs` are written in the event's
    /// own transaction (only if the event is new; a duplicate creates nothing). Without, it is stored
    /// `received` and the planner picks it up.
    /// - Returns: `.stored` with the new id, or `.duplicate` with the id of the event already stored.
    func append(_ event: InboundEvent, plan: PlanVerdict?, jobs: [NewJob]) async throws -> AppendOutcome


    /// Whether the store answers queries (for `/readyz`).
    func isReady() async -> Bool

    /// Events not yet planned, oldest first.
    func unplanned(limit: Int) async throws -> [StoredEvent]

    /// Records the planner's verdicts and creates their jobs in one transaction: `planned` with the planned
    /// actions (JSON), or `ignored`; each explanation says, rule by rule, why. A job whose idempotency key
    /// exists already is not created again (the same commit through two hooks, a redelivery).
    /// - Returns: How many jobs were created.
    @discardableResult
    func recordPlans(_ verdicts: [PlanVerdict], jobs: [NewJob]) async throws -> Int


    /// Claims the oldest runnable job for `lease` seconds (a worker that dies loses it when the lease
    /// expires), skipping rules whose running jobs reached their concurrency and actions not in `actions`;
    /// counts the attempt.
    func claimJob(now: Date, lease: TimeInterval, ruleLimits: [String: Int], actions: Set<String>) async throws -> JobRecord?

    /// Ends an attempt: `succeeded`/`failed`/`dead` are final; `queued` with `retryAt` schedules another try.
    /// `callbacks` are queued in the same transaction, so a crash cannot finish a job and lose its callbacks.
    /// - Returns: How many callbacks were not queued because their URL's `maxPerURL` was reached.
    @discardableResult
    /// `countAttempt: false` (an attempt cut short by shutdown) gives the attempt back to the job.
    func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                       callbacks: [NewCallback], countAttempt: Bool) async throws -> Int

    /// Watching jobs whose run should be canceled (superseded).
    func cancelRequested() async throws -> [JobRecord]

    /// Ends a watching job when its run is terminal, queueing its callbacks in the same transaction (only
    /// if the job was still watching). - Returns: How many callbacks were refused by `maxPerURL`.
    @discardableResult
    func finishWatch(id: String, state: JobState, error: String?, result: String, callbacks: [NewCallback]) async throws -> Int

    /// Queues a callback (once per job and target: a second enqueue is ignored), unless the event already has
    /// `callback.maxPerURL` callbacks to the same URL.
    /// - Returns: Whether it was queued.
    @discardableResult
    func enqueueCallback(_ callback: NewCallback) async throws -> Bool

    /// Callbacks due for delivery.
    func dueCallbacks(now: Date, limit: Int) async throws -> [CallbackRecord]

    /// Records a delivery attempt: delivered, retried at `retryAt`, or dead.
    func recordDelivery(id: String, state: CallbackState, status: Int?, error: String?, retryAt: Date?) async throws


    /// The planner's explanations of these events, by id (events not yet planned have none); bodies are not read.
    func explanations(ids: [String]) async throws -> [String: String]

    /// Jobs and callbacks per state, and events waiting to be planned (for metrics and the status page).
    func counts() async throws -> StoreCounts

    /// Running jobs whose lease expired go back to the queue.
    @discardableResult
    func releaseExpiredLeases(now: Date) async throws -> Int


    /// Deletes events received before `date`, which also forgets their dedup keys.
    /// - Returns: How many were deleted.
    func prune(receivedBefore date: Date) async throws -> Int
}

extension EventStore {
    /// Stores an event for the planner to plan.
    public func append(_ event: InboundEvent) async throws -> AppendOutcome {
        try await append(event, plan: nil, jobs: [])
    }

    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date) async throws {
        try await finishAttempt(id: id, state: state, error: error, result: result, retryAt: retryAt, startedAt: startedAt, now: now, callbacks: [])
    }

    @discardableResult
    public func finishAttempt(id: String, state: JobState, error: String?, result: String?, retryAt: Date?, startedAt: Date, now: Date,
                              callbacks: [NewCallback]) async throws -> Int {
        try await finishAttempt(id: id, state: state, error: error, result: result, retryAt: retryAt, startedAt: startedAt, now: now,
                                callbacks: callbacks, countAttempt: true)
    }

    public func finishWatch(id: String, state: JobState, error: String?, result: String) async throws {
        try await finishWatch(id: id, state: state, error: error, result: result, callbacks: [])
    }

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

/// Which events to list. `before` pages: only rows older than the one with that id.
public struct EventQuery: Sendable, Equatable {
    public var limit: Int?
    public var source: String?
    public var kind: String?
    public var state: EventState?
    public var before: String?
    public init(limit: Int? = nil, source: String? = nil, kind: String? = nil, state: EventState? = nil, before: String? = nil) {
        self.limit = limit; self.source = source; self.kind = kind; self.state = state; self.before = before
    }
}

/// Which jobs to list. `before` pages: only rows older than the one with that id.
public struct JobQuery: Sendable, Equatable {
    public var limit: Int?
    public var state: JobState?
    public var rule: String?
    public var eventID: String?
    public var before: String?
    public init(limit: Int? = nil, state: JobState? = nil, rule: String? = nil, eventID: String? = nil, before: String? = nil) {
        self.limit = limit; self.state = state; self.rule = rule; self.eventID = eventID; self.before = before
    }
}

/// Which callbacks to list. `before` pages: only rows older than the one with that id.
public struct CallbackQuery: Sendable, Equatable {
    public var limit: Int?
    public var state: CallbackState?
    public var kind: String?
    public var eventID: String?
    public var jobID: String?
    public var before: String?
    public init(limit: Int? = nil, state: CallbackState? = nil, kind: String? = nil, eventID: String? = nil, jobID: String? = nil,
                before: String? = nil) {
        self.limit = limit; self.state = state; self.kind = kind; self.eventID = eventID; self.jobID = jobID; self.before = before
    }
}

/// Rows per state.
public struct StoreCounts: Sendable, Equatable {
    public var jobs: [String: Int]
    public var callbacks: [String: Int]
    public var events: [String: Int]
    public init(jobs: [String: Int] = [:], callbacks: [String: Int] = [:], events: [String: Int] = [:]) {
        self.jobs = jobs; self.callbacks = callbacks; self.events = events
    }
}

/// The result of `EventStore.append`.
public enum AppendOutcome: Sendable, Equatable {
    /// Newly stored under this id.
    case stored(id: String)
    /// Already stored under this id; nothing new was written.
    case duplicate(id: String)

    /// The event id either way.
    public var id: String {
        switch self {
        case .stored(let id), .duplicate(let id): id
        }
    }
}

/// Where a job is in its life.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, watching, succeeded, failed, dead
}

/// A job to create: one planned action of one event.
public struct NewJob: Sendable, Equatable {
    /// `{rule}#{action index}@{event identity}`: the same key never makes a second job.
    public var idempotencyKey: String
    public var eventID: String
    public var rule: String
    public var actionIndex: Int
    public var action: String
    /// The rendered parameters (JSON).
    public var parameters: String
    public var maxAttempts: Int
    /// With `supersede`: `repository@branch`; a newer job in the same rule and scope cancels this one.
    public var supersedeScope: String?

    public init(idempotencyKey: String, eventID: String, rule: String, actionIndex: Int, action: String, parameters: String, maxAttempts: Int,
                supersedeScope: String? = nil) {
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
    public var id: String
    public var idempotencyKey: String
    public var eventID: String
    public var rule: String
    public var actionIndex: Int
    public var action: String
    public var parameters: String
    public var state: JobState
    public var attempts: Int
    public var maxAttempts: Int
    public var createdAt: Date
    public var lastError: String?
    /// What the action produced (JSON), once it succeeded.
    public var result: String?
    /// The delivery id of the job's event.
    public var deliveryID: String?

    enum CodingKeys: String, CodingKey {
        case id, rule, action, parameters, state, attempts, result
        case idempotencyKey = "idempotency_key", eventID = "event_id", actionIndex = "action_index", deliveryID = "delivery_id"
        case maxAttempts = "max_attempts", createdAt = "created_at", lastError = "last_error"
    }
}

/// Where a callback is.
public enum CallbackState: String, Sendable, Codable, CaseIterable { case pending, delivered, dead }

/// A callback to deliver.
public struct NewCallback: Sendable, Equatable {
    public var jobID: String
    public var eventID: String
    public var rule: String
    /// The target's position in the rule's `callback:` list.
    public var targetIndex: Int
    public var kind: String
    public var url: String
    /// The JSON body.
    public var body: String
    /// At most this many callbacks of one event to this URL (Slack's response_url takes 5).
    public var maxPerURL: Int?

    public init(jobID: String, eventID: String, rule: String, targetIndex: Int, kind: String, url: String, body: String, maxPerURL: Int? = nil) {
        self.maxPerURL = maxPerURL
        self.jobID = jobID
        self.eventID = eventID
        self.rule = rule
        self.targetIndex = targetIndex
        self.kind = kind
        self.url = url
        self.body = body
    }
}

/// A stored callback.
public struct CallbackRecord: Sendable, Equatable, Codable {
    public var id: String
    public var jobID: String
    public var eventID: String
    public var rule: String
    public var targetIndex: Int
    public var kind: String
    public var url: String
    public var body: String
    public var state: CallbackState
    public var attempts: Int
    public var lastStatus: Int?
    public var lastError: String?

    enum CodingKeys: String, CodingKey {
        case id, rule, kind, url, body, state, attempts
        case jobID = "job_id", eventID = "event_id", targetIndex = "target_index", lastStatus = "last_status", lastError = "last_error"
    }
}

/// One attempt at a job.
public struct JobAttempt: Sendable, Equatable, Codable {
    public var number: Int
    public var startedAt: Date
    public var endedAt: Date
    public var outcome: JobState
    public var error: String?
}

/// The planner's verdict on one event.
public struct PlanVerdict: Sendable, Equatable {
    public var id: String
    public var state: EventState
    public var plan: String?
    public var explanation: String

    public init(id: String, state: EventState, plan: String?, explanation: String) {
        self.id = id
        self.state = state
        self.plan = plan
        self.explanation = explanation
    }
}

/// One line of an event listing.
public struct EventSummary: Sendable, Equatable, Codable {
    public var id: String
    public var source: String
    public var kind: String
    public var deliveryID: String
    public var state: EventState
    public var receivedAt: Date
    public var bodyBytes: Int

    public init(id: String, source: String, kind: String, deliveryID: String, state: EventState, receivedAt: Date, bodyBytes: Int) {
        self.id = id; self.source = source; self.kind = kind; self.deliveryID = deliveryID
        self.state = state; self.receivedAt = receivedAt; self.bodyBytes = bodyBytes
    }

    enum CodingKeys: String, CodingKey {
        case id, source, kind, state
        case deliveryID = "delivery_id"
        case receivedAt = "received_at"
        case bodyBytes = "body_bytes"
    }
}

/// A stored event with everything ingress kept.
public struct StoredEvent: Sendable, Equatable, Codable {
    public var summary: EventSummary
    public var headers: [String: String]
    public var contentType: String
    public var body: [UInt8]
    /// Rule by rule, why each matched or not, once the planner has run.
    public var explanation: String?
    /// The planned actions (JSON), when any rule matched.
    public var plan: String?

    public init(summary: EventSummary, headers: [String: String], contentType: String, body: [UInt8], explanation: String?, plan: String?) {
        self.summary = summary; self.headers = headers; self.contentType = contentType; self.body = body
        self.explanation = explanation; self.plan = plan
    }

    enum CodingKeys: String, CodingKey {
        case headers, explanation, plan, body
        case contentType = "content_type", bodyBase64 = "body_base64"
    }

    /// The summary's fields, then these; the body as text when it is UTF-8, else as `body_base64`.
    public func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(headers, forKey: .headers)
        try c.encode(contentType, forKey: .contentType)
        if let text = String(validating: body, as: UTF8.self) { try c.encode(text, forKey: .body) }
        else { try c.encode(Data(body).base64EncodedString(), forKey: .bodyBase64) }
        try c.encodeIfPresent(explanation, forKey: .explanation)
        try c.encodeIfPresent(plan, forKey: .plan)
    }

    public init(from decoder: any Decoder) throws {
        summary = try EventSummary(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        headers = try c.decode([String: String].self, forKey: .headers)
        contentType = try c.decode(String.self, forKey: .contentType)
        if let text = try c.decodeIfPresent(String.self, forKey: .body) { body = Array(text.utf8) }
        else { body = [UInt8](Data(base64Encoded: try c.decode(String.self, forKey: .bodyBase64)) ?? Data()) }
        explanation = try c.decodeIfPresent(String.self, forKey: .explanation)
        plan = try c.decodeIfPresent(String.self, forKey: .plan)
    }
}
