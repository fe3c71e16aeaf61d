import Foundation

/// What the later stages of a job need to know about its event, fixed when the event is planned: jobs and callbacks
/// read these instead of normalizing the stored body again against whatever the configuration is by then (a reload
/// that removed the source used to leave them with nothing: no repository, commit or Slack answer).
public struct EventFacts: Sendable, Equatable, Codable {
    public var source: String
    /// The sender's event name (`push`, `Push Hook`, `/aml`, …).
    public var kind: String
    public var deliveryID: String
    /// Whether the source checks signatures (what an unsigned source's payload names is anybody's choice).
    public var signed: Bool
    /// `owner/name`.
    public var repository: String?
    public var cloneURL: String?
    /// The pushed commit (`after`).
    public var commit: String?
    public var ref: String?
    public var branch: String?
    public var actor: String?
    /// A chat command as typed (`/aml scale gpu 4`), and where its answer goes.
    public var commandLine: String?
    public var responseURL: String?

    enum CodingKeys: String, CodingKey {
        case source, kind, signed, repository, commit, ref, branch, actor
        case deliveryID = "delivery_id", cloneURL = "clone_url", commandLine = "command_line", responseURL = "response_url"
    }

    public init(source: String, kind: String, deliveryID: String, signed: Bool, repository: String? = nil, cloneURL: String? = nil,
                commit: String? = nil, ref: String? = nil, branch: String? = nil, actor: String? = nil, commandLine: String? = nil,
                responseURL: String? = nil) {
        self.source = source
        self.kind = kind
        self.deliveryID = deliveryID
        self.signed = signed
        self.repository = repository
        self.cloneURL = cloneURL
        self.commit = commit
        self.ref = ref
        self.branch = branch
        self.actor = actor
        self.commandLine = commandLine
        self.responseURL = responseURL
    }

    /// The facts of a normalized event (`kind` as the sender named it).
    public init(_ e: NormalizedEvent, kind: String, signed: Bool) {
        self.init(source: e.source, kind: kind, deliveryID: e.deliveryID, signed: signed, repository: e.repository?.fullName,
                  cloneURL: e.repository?.cloneURL, commit: e.after, ref: e.ref, branch: e.branch, actor: e.actor,
                  commandLine: e.command?.line, responseURL: e.command?.responseURL)
    }
}
