import AzureML
import Foundation
import Logging
import MLHookCore
import Signing
import Store
import Synchronization

/// What an action gets for one attempt: its job, the Azure ML client, the configuration in force when the
/// attempt started, and the event that made the job, read and normalized at most once per attempt (the
/// action and the callbacks share it).
final class ActionContext: Sendable {
    let job: JobRecord
    let client: any AzureMLClient
    let config: MLHookConfig
    let logger: Logger
    let git: GitSource?
    /// The workspace the action named (`workspace:`), or nil for the default one.
    let workspace: String?
    private let attemptEvent: AttemptEvent

    typealias LoadedEvent = AttemptEvent.Loaded

    init(job: JobRecord, client: any AzureMLClient, config: MLHookConfig, event: AttemptEvent, git: GitSource?, logger: Logger, workspace: String? = nil) {
        self.workspace = workspace
        self.job = job
        self.client = client
        self.config = config
        self.attemptEvent = event
        self.git = git
        self.logger = logger
    }

    /// The job's event (nil when it was pruned), loaded on first use.
    func event() async throws -> LoadedEvent? { try await attemptEvent.load() }

    /// What the job knows of its event: the facts fixed when it was planned (`JobContext`); for a job planned before
    /// jobs kept them, read from the stored event now (nil when it was pruned).
    func facts() async throws -> EventFacts? {
        if let context = JobContext(text: job.context) { return context.facts }
        guard let loaded = try await event() else { return nil }
        let s = loaded.stored.summary
        return loaded.normalized.map { EventFacts($0, kind: s.kind, signed: loaded.signed) }
            ?? EventFacts(source: s.source, kind: s.kind, deliveryID: s.deliveryID, signed: loaded.signed)
    }

    /// The name of the run or command job this attempt starts: `mlhook_{job id}`, then `mlhook_{job id}_retry{n}`
    /// after the n-th `jobs retry`. Every automatic attempt uses the same name, so an attempt whose answer was lost
    /// finds the run it started; an operator's retry starts a new run instead of finding the one that failed.
    var runName: String { "mlhook_" + job.id + (job.retries > 0 ? "_retry\(job.retries)" : "") }

    /// The surface (v1 or v2) of the action's workspace.
    var api: AzureMLConfig.API { config.azureml.api(workspace: workspace) }

    /// The provenance tags an action writes on what it makes in Azure ML: `mlhook_rule`, `mlhook_event`, `mlhook_job`
    /// and, from the event, `mlhook_delivery_id`, `mlhook_repository` and `mlhook_commit` (the event's commit).
    func provenanceTags() async throws -> [String: String] {
        var tags = ["mlhook_rule": job.rule, "mlhook_event": job.eventID, "mlhook_job": job.id]
        if let f = try await facts() {
            tags["mlhook_delivery_id"] = f.deliveryID
            if let repo = f.repository { tags["mlhook_repository"] = repo }
            if let sha = f.commit, !sha.isEmpty { tags["mlhook_commit"] = sha }
        }
        return tags
    }

    /// The rule that planned the job, as configured now.
    var rule: Rule? { config.rules.first { $0.name == job.rule } }

    /// The action's secret parameter (`start_run.token`, `score.key`), resolved now so a rotated secret is used.
    /// - Parameter name: The parameter's name, for messages (`token`, `key`).
    /// - Returns: nil when the action has none.
    func secret(_ name: String) throws -> WebhookSecret? {
        guard let rule, job.actionIndex < rule.actions.count, let ref = rule.actions[job.actionIndex].secret else { return nil }
        return try SecretResolver().resolve(ref, key: "rules[\(job.rule)].actions[\(job.actionIndex)].\(job.action).\(name)")
    }
}

/// A job's event, read from the inbox and normalized at most once per attempt: the action and the callbacks of
/// its outcome share it.
final class AttemptEvent: Sendable {
    /// The event as stored, and its normalized form (nil when its source is no longer configured).
    struct Loaded: Sendable {
        let stored: StoredEvent
        let normalized: NormalizedEvent?
        /// Whether its source checks signatures: what an unsigned (`insecure`) source's payload names, such as a
        /// Slack response_url, is anybody's choice.
        var signed = true
    }

    private let inbox: any Inbox
    private let id: String
    private let config: MLHookConfig
    private let loaded = Mutex<Loaded??>(nil)

    init(inbox: any Inbox, id: String, config: MLHookConfig) {
        self.inbox = inbox
        self.id = id
        self.config = config
    }

    /// The event (nil when it was pruned).
    func load() async throws -> Loaded? {
        if let cached = loaded.withLock({ $0 }) { return cached }
        let event = try await inbox.event(id: id).map { stored in
            Loaded(stored: stored, normalized: EventPlanner.normalize(stored, config: config),
                   signed: config.source(named: stored.summary.source).map { !$0.insecure } ?? false)
        }
        loaded.withLock { $0 = .some(event) }
        return event
    }
}
