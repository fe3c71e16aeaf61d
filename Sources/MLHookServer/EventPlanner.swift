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
        // One transaction (one fsync) for the whole batch, not one per event.
        try await store.recordPlans(verdicts.map {
            PlanVerdict(id: $0.0.summary.id, state: $0.1.state, plan: $0.1.plan, explanation: $0.1.explanation)
        })
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

    /// The planner's verdict for one stored event. Pure.
    public static func verdict(for stored: StoredEvent, config: MLHookConfig) -> (state: EventState, plan: String?, explanation: String, count: Int) {
        let e = normalize(stored, config: config)
        guard let e else {
            return (.ignored, nil, "source \(stored.summary.source) is no longer configured", 0)
        }
        let plan = Planner.plan(e, rules: config.rules)
        let actions = plan.actions
        guard !actions.isEmpty else { return (.ignored, nil, plan.explanation, 0) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = (try? encoder.encode(actions)).map { String(decoding: $0, as: UTF8.self) }
        return (.planned, json, plan.explanation, actions.count)
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
