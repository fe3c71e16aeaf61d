/// What kind of thing happened, the same word for every provider.
public enum EventKind: String, Sendable, Equatable, CaseIterable, Codable {
    /// Commits pushed to a branch.
    case push
    /// A tag pushed or created.
    case tag
    /// A branch deleted.
    case branchDelete = "branch_delete"
    /// A pull or merge request opened, updated, closed or merged.
    case pullRequest = "pull_request"
    /// A comment on an issue, pull request or commit.
    case comment
    /// A release published.
    case release
    /// A chat command (Slack slash command).
    case command
    /// A cron schedule's tick.
    case schedule
    /// Anything else (pings, tag deletions, CI events, …): recorded, never an error.
    case other
}

/// The repository an event is about.
public struct RepositoryInfo: Sendable, Equatable {
    /// `owner/name` (GitLab: the full namespace path; Bitbucket DC: `PROJECT/slug`).
    public var fullName: String
    /// The last path segment of `fullName`.
    public var name: String { fullName.split(separator: "/").last.map(String.init) ?? fullName }
    /// Everything before the last segment.
    public var owner: String { fullName.split(separator: "/").dropLast().joined(separator: "/") }
    /// HTTPS clone URL when the payload carries one.
    public var cloneURL: String?
    /// The default branch when the payload carries it.
    public var defaultBranch: String?

    public init(fullName: String, cloneURL: String? = nil, defaultBranch: String? = nil) {
        self.fullName = fullName
        self.cloneURL = cloneURL
        self.defaultBranch = defaultBranch
    }
}

/// Files touched by the commits in a push payload.
public struct ChangedFiles: Sendable, Equatable {
    public var added: [String] = []
    public var modified: [String] = []
    public var removed: [String] = []

    public init(added: [String] = [], modified: [String] = [], removed: [String] = []) {
        self.added = added
        self.modified = modified
        self.removed = removed
    }

    /// Every path once, in first-seen order.
    public var all: [String] {
        var seen = Set<String>()
        return (added + modified + removed).filter { seen.insert($0).inserted }
    }
}

/// A chat or comment command: `/aml scale gpu 4` is command `/aml` with text `scale gpu 4`.
public struct CommandInfo: Sendable, Equatable {
    public var name: String
    public var text: String
    /// The user's id (Slack `user_id`), for allow-lists.
    public var userID: String?
    /// Where results go (Slack `response_url`).
    public var responseURL: String?

    public init(name: String, text: String, userID: String? = nil, responseURL: String? = nil) {
        self.name = name
        self.text = text
        self.userID = userID
        self.responseURL = responseURL
    }

    /// `name text`, as typed.
    public var line: String { text.isEmpty ? name : "\(name) \(text)" }
}

/// One event in the same shape for every provider; the raw payload stays addressable.
public struct NormalizedEvent: Sendable, Equatable {
    public var source: String
    public var kind: EventKind
    /// The provider's own event name (`push`, `Push Hook`, `repo:push`, …).
    public var providerEvent: String
    public var deliveryID: String
    /// The pull request / release / comment action (`opened`, `closed`, `merged`, `published`, …) if any.
    public var action: String?
    public var repository: RepositoryInfo?
    /// The full ref (`refs/heads/main`, `refs/tags/v1`).
    public var ref: String?
    public var branch: String?
    public var tag: String?
    public var before: String?
    public var after: String?
    public var changedFiles = ChangedFiles()
    /// Who triggered it (login, username or user id).
    public var actor: String?
    public var command: CommandInfo?
    /// Whether the ref was deleted (branch or tag deletion).
    public var deleted = false
    /// The whole payload.
    public var payload: JSONValue

    public init(source: String, kind: EventKind, providerEvent: String, deliveryID: String, payload: JSONValue) {
        self.source = source
        self.kind = kind
        self.providerEvent = providerEvent
        self.deliveryID = deliveryID
        self.payload = payload
    }
}
