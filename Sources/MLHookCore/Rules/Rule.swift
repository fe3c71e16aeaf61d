import Foundation

/// One rule: when any of its condition blocks matches an event, its actions are planned.
public struct Rule: Sendable, Equatable {
    public var name: String
    /// Condition blocks; the rule matches when any block matches (OR), a block when all its conditions do (AND).
    public var when: [WhenBlock]
    public var actions: [ActionSpec]
    public var callbacks: [CallbackTarget]
    /// Most jobs of this rule running at once (nil: only the global bound).
    public var concurrency: Int?
    /// Attempts per job before it is dead.
    public var maxAttempts: Int
    /// A newer push to the same branch cancels this rule's older queued or running run.
    public var supersede: Bool
    /// The rule's line in the config file.
    public var line: Int
    /// Each callback's line in the config file, in order (empty for rules not read from a file).
    public var callbackLines: [Int] = []

    public init(name: String, when: [WhenBlock], actions: [ActionSpec], callbacks: [CallbackTarget] = [],
                concurrency: Int? = nil, maxAttempts: Int = 5, supersede: Bool = false, line: Int = 0) {
        self.name = name
        self.when = when
        self.actions = actions
        self.callbacks = callbacks
        self.concurrency = concurrency
        self.maxAttempts = maxAttempts
        self.supersede = supersede
        self.line = line
    }
}

/// A payload condition on a dotted path.
public struct PayloadPredicate: Sendable, Equatable {
    public enum Test: Sendable, Equatable {
        case equals(JSONValue)
        case oneOf([JSONValue])
        case regex(String)
        case exists(Bool)
    }

    public var path: String
    public var test: Test

    public init(path: String, test: Test) {
        self.path = path
        self.test = test
    }
}

/// Conditions that must all hold. Absent conditions are not checked.
public struct WhenBlock: Sendable, Equatable {
    public var source: String?
    public var kinds: [EventKind]?
    /// Pull request / comment / release actions (`opened`, `merged`, `published`, …).
    public var actions: [String]?
    public var repositories: [Glob]?
    public var branches: [Glob]?
    public var tags: [Glob]?
    /// Include globs and `!`-prefixed exclude globs over changed files.
    public var paths: [String]?
    public var actors: [String]?
    public var payload: [PayloadPredicate] = []
    public var command: CommandPattern?
    /// Users allowed to run the command (Slack user ids or logins).
    public var users: [String]?
    public var schedule: CronSchedule?

    public init() {}
}

/// The Azure ML operations a rule can plan.
public enum ActionType: String, Sendable, Equatable, CaseIterable, Codable {
    case startRun = "start_run"
    case registerModel = "register_model"
    case deleteModel = "delete_model"
    case scaleCompute = "scale_compute"
    case cancelRun = "cancel_run"
    case score
    /// v2: a command job from the pushed code (a code asset).
    case submitJob = "submit_job"
    /// v2: archives a model version.
    case archiveModel = "archive_model"
    /// v2: scores a managed online endpoint.
    case invokeEndpoint = "invoke_endpoint"

    /// Whether the action fetches the event's commit (or `repository`/`ref`/`pull_request`) with git.
    public var fetchesCode: Bool { self == .startRun || self == .submitJob }
}

/// A parameter as written: a template, a list of templates, or a map of templates.
public enum ParameterTemplate: Sendable, Equatable {
    case single(Template)
    case list([Template])
    case map([String: Template])
}

/// A rendered parameter.
public enum ParameterValue: Sendable, Equatable, Codable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case list([String])
    case map([String: String])

    public var description: String {
        switch self {
        case .string(let s): "\"\(s)\""
        case .int(let n): String(n)
        case .list(let l): "[" + l.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        case .map(let m): "{" + m.sorted { $0.key < $1.key }.map { "\($0.key): \"\($0.value)\"" }.joined(separator: ", ") + "}"
        }
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var int: Int? { if case .int(let n) = self { n } else { nil } }

    // Natural JSON (`"gpu"`, `4`, `["a"]`, `{"k":"v"}`), the format stored plans and jobs carry.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) { self = .int(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let l = try? c.decode([String].self) { self = .list(l) }
        else { self = .map(try c.decode([String: String].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let n): try c.encode(n)
        case .list(let l): try c.encode(l)
        case .map(let m): try c.encode(m)
        }
    }
}

/// One action of a rule, with its parameters as templates.
public struct ActionSpec: Sendable, Equatable {
    public var type: ActionType
    public var parameters: [String: ParameterTemplate]
    /// A secret parameter (`score.key`, `start_run.token`), never a template.
    public var secret: SecretReference?
    public var line: Int

    public init(type: ActionType, parameters: [String: ParameterTemplate], secret: SecretReference? = nil, line: Int = 0) {
        self.type = type
        self.parameters = parameters
        self.secret = secret
        self.line = line
    }
}

/// Where a rule's results go.
public enum CallbackTarget: Sendable, Equatable {
    /// A JSON POST signed with Standard Webhooks headers.
    case url(url: String, secret: SecretReference)
    /// The Slack command's `response_url`.
    case slack
    /// A commit status on the pushed SHA.
    case githubStatus(token: SecretReference, apiBase: String, context: String)
}

/// An action with its parameters rendered and validated, ready to become a job.
public struct PlannedAction: Sendable, Equatable, Codable {
    public var rule: String
    /// The action's position in the rule (part of the job's idempotency key).
    public var index: Int
    public var type: ActionType
    public var parameters: [String: ParameterValue]

    public init(rule: String, index: Int, type: ActionType, parameters: [String: ParameterValue]) {
        self.rule = rule
        self.index = index
        self.type = type
        self.parameters = parameters
    }

    /// `scale_compute {max_nodes: 4, name: "gpu"}`.
    public var summary: String {
        "\(type.rawValue) {" + parameters.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
    }
}
