import Foundation
import MLHookCore

/// Which callbacks to list. `before` pages: only rows older than the one with that id.
public struct CallbackQuery: Sendable, Equatable {
    /// At most this many (nil: all).
    public var limit: Int?
    /// Only callbacks in this state.
    public var state: CallbackState?
    /// Only callbacks of this kind (`url`, `slack`, `github_status`).
    public var kind: String?
    /// Only callbacks of this event.
    public var eventID: String?
    /// Only callbacks of this job.
    public var jobID: String?
    /// Only callbacks queued before the one with this id (the next page).
    public var before: String?
    public init(limit: Int? = nil, state: CallbackState? = nil, kind: String? = nil, eventID: String? = nil, jobID: String? = nil,
                before: String? = nil) {
        self.limit = limit; self.state = state; self.kind = kind; self.eventID = eventID; self.jobID = jobID; self.before = before
    }
}

/// Where a callback is.
public enum CallbackState: String, Sendable, Codable, CaseIterable { case pending, delivered, dead }

/// Which of a job's deliveries to one target a callback is: a started run's `pending` commit status, or the
/// job's final outcome. One of each per job and target.
public enum CallbackPhase: String, Sendable, Codable, CaseIterable { case pending, final }

/// Where a callback's secret comes from (the Standard Webhooks signing key of a `url` target, the token of a
/// `github_status` one), stored with the callback and resolved at each delivery, so a rotated secret is used and
/// a reloaded configuration cannot point a queued callback at another target's secret. Never the secret itself.
public enum CallbackCredential: Sendable, Equatable, Codable {
    /// No secret (Slack's response_url is its own credential).
    case none
    /// An environment variable of the server.
    case env(String)
    /// A file the server reads; with `create`, a random secret is written there first if it is missing (the
    /// embedded sample's callback secret).
    case file(String, create: Bool)
    /// A literal in the configuration (accepted with a warning): not copied into the store; read from the
    /// rule's target at delivery.
    case configured

    /// The stored form: `none`, `env:NAME`, `file:PATH`, `file+create:PATH`, `configured`.
    public var stored: String {
        switch self {
        case .none: "none"
        case .env(let name): "env:" + name
        case .file(let path, let create): (create ? "file+create:" : "file:") + path
        case .configured: "configured"
        }
    }

    /// From the stored form; unknown text is `.configured` (look it up in the rule).
    public init(stored: String?) {
        guard let stored else { self = .configured; return }
        if stored == "none" { self = .none }
        else if stored.hasPrefix("env:") { self = .env(String(stored.dropFirst(4))) }
        else if stored.hasPrefix("file:") { self = .file(String(stored.dropFirst(5)), create: false) }
        else if stored.hasPrefix("file+create:") { self = .file(String(stored.dropFirst(12)), create: true) }
        else { self = .configured }
    }

    public init(from decoder: any Decoder) throws { self.init(stored: try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(stored)
    }
}

/// A callback to deliver.
public struct NewCallback: Sendable, Equatable {
    /// `msg_…`, minted when the callback is made; it is the `webhook-id` receivers deduplicate on.
    public var id: String
    /// The job whose outcome it reports.
    public var jobID: String
    /// The job's event.
    public var eventID: String
    /// The job's rule.
    public var rule: String
    /// The target's position in the rule's `callback:` list.
    public var targetIndex: Int
    /// A started run's pending status, or the final outcome.
    public var phase: CallbackPhase
    /// `url`, `slack` or `github_status`.
    public var kind: String
    /// Where it is posted.
    public var url: String
    /// Where the delivery's secret comes from.
    public var credential: CallbackCredential
    /// The JSON body.
    public var body: String
    /// At most this many callbacks of one event to this URL (Slack's response_url takes 5).
    public var maxPerURL: Int?

    public init(id: String = EventID.make("msg"), jobID: String, eventID: String, rule: String, targetIndex: Int, phase: CallbackPhase = .final,
                kind: String, url: String, credential: CallbackCredential = .none, body: String, maxPerURL: Int? = nil) {
        self.id = id
        self.credential = credential
        self.phase = phase
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
    /// How long `dueCallbacks` keeps a callback it handed out from every other deliverer (on any replica), unless
    /// its delivery is recorded first: longer than one delivery attempt takes.
    public static let claimSeconds: TimeInterval = 60

    /// `msg_…`, the `webhook-id` of every attempt.
    public var id: String
    /// The job whose outcome it reports.
    public var jobID: String
    /// The job's event.
    public var eventID: String
    /// The job's rule.
    public var rule: String
    /// The target's position in the rule's `callback:` list.
    public var targetIndex: Int
    /// A started run's pending status, or the final outcome.
    public var phase: CallbackPhase
    /// `url`, `slack` or `github_status`.
    public var kind: String
    /// Where it is posted.
    public var url: String
    /// Where its secret comes from, read at each delivery.
    public var credential: CallbackCredential
    /// The JSON body.
    public var body: String
    /// Pending, delivered or dead.
    public var state: CallbackState
    /// Delivery attempts so far.
    public var attempts: Int
    /// The receiver's last HTTP status.
    public var lastStatus: Int?
    /// Why the last attempt failed.
    public var lastError: String?

    enum CodingKeys: String, CodingKey {
        case id, rule, kind, url, body, state, attempts, phase, credential
        case jobID = "job_id", eventID = "event_id", targetIndex = "target_index", lastStatus = "last_status", lastError = "last_error"
    }
}
