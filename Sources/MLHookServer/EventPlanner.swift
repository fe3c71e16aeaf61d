import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Store

/// Plans stored events: normalizes each one, runs the rules, and records the verdict with its explanation.
///
/// Jobs are created from these plans by the job engine (a later issue); an event that matched nothing is
/// `ignored`, and `mlhook events show` prints why, rule by rule.
public struct EventPlanner: Service {
    let store: any EventStore
    let live: LiveConfig
    let logger: Logger
    let pollInterval: Duration

    public init(store: any EventStore, live: LiveConfig, logger: Logger, pollInterval: Duration = .milliseconds(100)) {
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

    /// Plans up to 100 unplanned events.
    /// - Returns: How many were planned.
    public func planPending() async throws -> Int {
        let events = try await store.unplanned(limit: 100)
        let config = live.snapshot.config
        let verdicts = events.map { ($0, Self.verdict(for: $0, config: config)) }
        let maxAttempts = Dictionary(config.rules.map { ($0.name, $0.maxAttempts) }, uniquingKeysWith: { a, _ in a })
        let superseding = Set(config.rules.filter(\.supersede).map(\.name))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let jobs: [NewJob] = verdicts.flatMap { stored, verdict in
            verdict.actions.map { a in
                NewJob(idempotencyKey: "\(a.rule)#\(a.index)@\(verdict.identity)", eventID: stored.summary.id, rule: a.rule,
                       actionIndex: a.index, action: a.type.rawValue,
                       parameters: (try? encoder.encode(a.parameters)).map { String(decoding: $0, as: UTF8.self) } ?? "{}",
                       maxAttempts: maxAttempts[a.rule] ?? 5,
                       supersedeScope: superseding.contains(a.rule) && a.type == .startRun ? verdict.branchScope : nil)
            }
        }
        // One transaction (one fsync) for the whole batch: verdicts and their jobs together, never one without the other.
        try await store.recordPlans(verdicts.map {
            PlanVerdict(id: $0.0.summary.id, state: $0.1.state, plan: $0.1.plan, explanation: $0.1.explanation)
        }, jobs: jobs)
        for (stored, verdict) in verdicts {
            let meta: Logger.Metadata = ["event_id": .string(stored.summary.id), "delivery_id": .string(stored.summary.deliveryID),
                                         "source": .string(stored.summary.source)]
            if verdict.state == .planned {
                logger.info("event planned: \(verdict.count) action(s)", metadata: meta)
            } else {
                logger.info("event ignored: no rule matched", metadata: meta)
            }
        }
        return events.count
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
        public var count: Int { actions.count }
    }

    /// The planner's verdict for one stored event. Pure.
    public static func verdict(for stored: StoredEvent, config: MLHookConfig) -> Verdict {
        let fallback = "\(stored.summary.source):\(stored.summary.deliveryID)"
        guard let e = normalize(stored, config: config) else {
            return Verdict(state: .ignored, plan: nil, explanation: "source \(stored.summary.source) is no longer configured", actions: [], identity: fallback)
        }
        let plan = Planner.plan(e, rules: config.rules)
        let actions = plan.actions
        guard !actions.isEmpty else { return Verdict(state: .ignored, plan: nil, explanation: plan.explanation, actions: [], identity: fallback) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(actions)).map { String(decoding: $0, as: UTF8.self) }
        let scope = e.kind == .push ? e.repository.flatMap { r in e.branch.map { "\(r.fullName.lowercased())@\($0)" } } : nil
        return Verdict(state: .planned, plan: json, explanation: plan.explanation, actions: actions, identity: identity(e, fallback: fallback),
                       branchScope: scope)
    }

    static func identity(_ e: NormalizedEvent, fallback: String) -> String {
        if [.push, .tag].contains(e.kind), let repo = e.repository?.fullName.lowercased(), let sha = e.after?.lowercased(), !sha.isEmpty {
            return "git:\(repo)@\(sha)" + (e.kind == .tag ? ":tag:\(e.tag ?? "")" : "")
        }
        return fallback
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
