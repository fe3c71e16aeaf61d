import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Signing
import Store

/// Plans stored events: normalizes each one, runs the rules, and records the verdict with its explanation.
///
/// Jobs are created from these plans by the job engine (a later issue); an event that matched nothing is
/// `ignored`, and `mlhook events show` prints why, rule by rule.
public struct EventPlanner: Service {
    let store: any Inbox
    let live: LiveConfig
    let logger: Logger
    let pollInterval: Duration

    public init(store: any Inbox, live: LiveConfig, logger: Logger, pollInterval: Duration = .milliseconds(100)) {
        self.store = store
        self.live = live
        self.logger = logger
        self.pollInterval = pollInterval
    }

    public func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            var planned = 0
            do {
                planned = try await planPending()
            } catch {
                logger.error("planner: \(error)")
            }
            if planned == 0 {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pollInterval) }
            }
        }
    }

    /// Plans up to 100 events that ingress stored without a plan (schedule ticks, events stored before a
    /// restart or by an older version).
    /// - Returns: How many were planned.
    public func planPending() async throws -> Int {
        let events = try await store.unplanned(limit: 100)
        guard !events.isEmpty else { return 0 }
        let config = live.snapshot.config
        let decisions = events.map { Self.decide($0, config: config) }
        // One transaction (one fsync) for the whole batch: verdicts and their jobs together, never one without the other.
        do {
            try await store.recordPlans(decisions.map(\.record), jobs: decisions.flatMap(\.jobs))
        } catch let error as StoreError where !error.isRetryable {
            // A record the store refuses must not hold back the others: each alone, and one that still fails is parked.
            logger.warning("planner: the batch of \(events.count) could not be recorded (\(error)); recording them one by one")
            for (stored, decision) in zip(events, decisions) {
                do { try await store.recordPlans([decision.record], jobs: decision.jobs) } catch let error as StoreError where !error.isRetryable {
                    let reason = Parked.reason("its plan cannot be stored (\(error))")
                    try await store.recordPlans([PlanVerdict(id: stored.summary.id, state: .failed, plan: nil, explanation: reason)], jobs: [])
                    logger.error("event parked: \(reason)", metadata: ["event_id": .string(stored.summary.id)])
                }
            }
        }
        for (stored, decision) in zip(events, decisions) {
            Self.log(decision, logger: logger, metadata: ["event_id": .string(stored.summary.id),
                                                          "delivery_id": .string(stored.summary.deliveryID),
                                                          "source": .string(stored.summary.source)])
        }
        return events.count
    }

    /// A verdict with what the store records for it: the event's new state and the jobs it creates.
    public struct Decision: Sendable {
        public var verdict: Verdict
        public var record: PlanVerdict
        public var jobs: [NewJob]
    }

    /// Plans one event: its verdict, and the jobs (one per planned action) that the store creates in the
    /// same transaction as the verdict. Pure.
    public static func decide(_ stored: StoredEvent, config: MLHookConfig) -> Decision {
        let verdict = verdict(for: stored, config: config)
        let id = stored.summary.id
        let record = PlanVerdict(id: id, state: verdict.state, plan: verdict.plan, explanation: verdict.explanation)
        guard !verdict.actions.isEmpty else { return Decision(verdict: verdict, record: record, jobs: []) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let rules = Dictionary(config.rules.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let jobs = verdict.actions.map { a in
            NewJob(idempotencyKey: "\(a.rule)#\(a.index + 1)@\(verdict.identity)", eventID: id, rule: a.rule,
                   actionIndex: a.index, action: a.type.rawValue,
                   parameters: (try? encoder.encode(a.parameters)).map { String(decoding: $0, as: UTF8.self) } ?? "{}",
                   maxAttempts: rules[a.rule]?.maxAttempts ?? 5,
                   supersedeScope: rules[a.rule]?.supersede == true && a.type.fetchesCode ? verdict.branchScope : nil,
                   context: verdict.facts.map { JobContext(facts: $0, callbacks: (rules[a.rule]?.callbacks ?? []).map(CallbackFormatter.planned)).text })
        }
        return Decision(verdict: verdict, record: record, jobs: jobs)
    }

    /// Plans an event ingress is about to store, so it is stored planned, in one transaction with its jobs.
    public static func decide(_ event: InboundEvent, config: MLHookConfig) -> Decision {
        decide(StoredEvent(summary: EventSummary(id: event.id, source: event.source, kind: event.kind, deliveryID: event.deliveryID,
                                                 state: .received, receivedAt: event.receivedAt, bodyBytes: event.body.count),
                           headers: event.headers, contentType: event.contentType, body: event.body, explanation: nil, plan: nil),
               config: config)
    }

    /// The line every planned event gets in the log.
    static func log(_ decision: Decision, logger: Logger, metadata: Logger.Metadata) {
        if decision.verdict.state == .planned {
            logger.info("event planned: \(decision.verdict.count) action(s)", metadata: metadata)
        } else {
            logger.info("event ignored: no rule matched", metadata: metadata)
        }
    }

    /// What the planner decided for one event.
    public struct Verdict: Sendable {
        public var state: EventState
        public var plan: String?
        public var explanation: String
        public var actions: [PlannedAction]
        /// What makes two deliveries the same event for jobs: a push is its repository and commit (so a
        /// redelivery, or the same commit through two hooks, runs once); anything else its source and delivery id.
        public var identity: String
        /// `repository@branch` for pushes (what `supersede` compares).
        public var branchScope: String?
        /// What its jobs carry on (`JobContext`), when it planned any.
        public var facts: EventFacts?
        public var count: Int { actions.count }
    }

    /// The planner's verdict for one stored event. Pure.
    public static func verdict(for stored: StoredEvent, config: MLHookConfig) -> Verdict {
        // Events that plan nothing need no job identity: the body hash is computed only for those that do.
        let fallback = "\(stored.summary.source):\(stored.summary.deliveryID)"
        guard let e = normalize(stored, config: config) else {
            return Verdict(state: .ignored, plan: nil, explanation: "source \(stored.summary.source) is no longer configured", actions: [], identity: fallback)
        }
        let plan = Planner.plan(e, rules: config.rules)
        // What a start_run would fetch is checked now, before any job exists: a repository, ref or folder git would
        // take for an option or a command transport, or a transport the source does not allow, plans nothing.
        var refused: [String] = []
        let actions = plan.actions.filter { a in
            guard a.type.fetchesCode, a.parameters["pull_request"] == nil,
                  let url = a.parameters["repository"]?.string ?? e.repository?.cloneURL,
                  let ref = a.parameters["ref"]?.string ?? e.after else { return true }  // known only when the job runs
            do { try GitSource.validate(url: url, ref: ref, folder: a.parameters["dir"]?.string ?? ".") } catch {
                refused.append("\(a.rule)#\(a.index + 1) \(a.type.rawValue) refused: \(error)")
                return false
            }
            if let why = CodeLocation.transportRefusal(url, source: stored.summary.source, config: config) {
                refused.append("\(a.rule)#\(a.index + 1) \(a.type.rawValue) refused: \(why)")
                return false
            }
            return true
        }
        let explanation = ([plan.explanation] + refused).joined(separator: "\n")
        guard !actions.isEmpty else { return Verdict(state: .ignored, plan: nil, explanation: explanation, actions: [], identity: fallback) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(actions)).map { String(decoding: $0, as: UTF8.self) }
        let scope = e.kind == .push ? e.repository.flatMap { r in e.branch.map { "\(r.fullName.lowercased())@\($0)" } } : nil
        let signed = config.source(named: stored.summary.source).map { !$0.insecure } ?? false
        return Verdict(state: .planned, plan: json, explanation: explanation, actions: actions,
                       identity: identity(e, fallback: fallbackIdentity(stored, config: config)),
                       branchScope: scope, facts: EventFacts(e, kind: stored.summary.kind, signed: signed))
    }

    /// What makes two non-push deliveries the same event: the delivery id where the signature covers it (Standard
    /// Webhooks, GitLab signing tokens) or mlhook made it (schedule ticks, Slack's timestamp and body); otherwise
    /// (GitHub, Gitea, Bitbucket, a GitLab token, generic HMAC) a hash of the signed body, so a captured delivery
    /// replayed with a fresh, unsigned delivery header plans nothing new.
    static func fallbackIdentity(_ stored: StoredEvent, config: MLHookConfig) -> String {
        let s = stored.summary
        let type = config.source(named: s.source)?.type
        let signedID = s.source == Scheduler.sourceName || type == .standard || type == .slack
            || (type == .gitlab && (stored.headers["webhook-id"] != nil || stored.headers["svix-id"] != nil))
        if signedID || type == nil { return "\(s.source):\(s.deliveryID)" }
        return "\(s.source):body:" + Digest.sha256Hex(stored.body)
    }

    static func identity(_ e: NormalizedEvent, fallback: @autoclosure () -> String) -> String {
        if [.push, .tag].contains(e.kind), let repo = e.repository?.fullName.lowercased(), let sha = e.after?.lowercased(), !sha.isEmpty {
            return "git:\(repo)@\(sha)" + (e.kind == .tag ? ":tag:\(e.tag ?? "")" : "")
        }
        return fallback()
    }

    /// The normalized form of a stored event, or nil when its source is gone.
    public static func normalize(_ stored: StoredEvent, config: MLHookConfig) -> NormalizedEvent? {
        let s = stored.summary
        if s.source == Scheduler.sourceName {
            return NormalizedEvent(source: s.source, kind: .schedule, providerEvent: s.kind, deliveryID: s.deliveryID,
                                   payload: JSONValue(json: stored.body) ?? .null)
        }
        guard let source = config.source(named: s.source) else { return nil }
        return EventNormalizer.normalize(.init(source: s.source, sourceType: source.type, providerEvent: s.kind,
                                               deliveryID: s.deliveryID, contentType: stored.contentType, body: stored.body))
    }
}
