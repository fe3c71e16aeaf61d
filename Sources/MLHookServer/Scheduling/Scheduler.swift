import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Store

/// A clock the scheduler reads and sleeps on (injected in tests).
public protocol SchedulerClock: Sendable {
    func now() -> Date
    func sleep(until date: Date) async throws
}

/// The system clock.
public struct SystemSchedulerClock: SchedulerClock {
    public init() {}
    public func now() -> Date { Date() }
    public func sleep(until date: Date) async throws {
        let seconds = date.timeIntervalSinceNow
        if seconds > 0 { try await Task.sleep(for: .milliseconds(Int(seconds * 1000) + 1)) }
    }
}

/// Fires each rule schedule's ticks as synthetic events through the same inbox as webhooks.
///
/// A tick's dedup key is `schedule:{rule}:{instant}`, so a tick fires once even across restarts. At start,
/// the most recent tick missed while mlhook was down fires once if it is within `scheduler.catch_up_seconds`.
public struct Scheduler: Service {
    /// The source name of synthetic schedule events (reserved; no configured source may use it).
    public static let sourceName = "schedule"

    let store: any Inbox
    let live: LiveConfig
    let clock: any SchedulerClock
    let logger: Logger
    /// Longest sleep, so a reloaded configuration's schedules take effect promptly.
    let maxSleep: TimeInterval

    public init(store: any Inbox, live: LiveConfig, clock: any SchedulerClock = SystemSchedulerClock(),
                logger: Logger, maxSleep: TimeInterval = 1) {
        self.store = store
        self.live = live
        self.clock = clock
        self.logger = logger
        self.maxSleep = maxSleep
    }

    /// The rules with a schedule, with their schedule.
    static func scheduled(_ config: MLHookConfig) -> [(rule: String, schedule: CronSchedule)] {
        config.rules.flatMap { rule in rule.when.compactMap { $0.schedule.map { (rule.name, $0) } } }
    }

    public func run() async throws {
        var last = clock.now()
        try await catchUp(at: last)
        while !Task.isCancelledOrShuttingDown {
            let schedules = Self.scheduled(live.snapshot.config)
            let now = clock.now()
            // At most the latest tick since the last pass fires, as at start: a wall clock stepped forward (or a
            // suspended machine) must not fire every tick in between. A longer gap than a pass is looked at only
            // within the catch-up window, as at start.
            let gap = now.timeIntervalSince(last)
            let window = gap > maxSleep + 60 ? min(gap, TimeInterval(max(live.snapshot.config.scheduler.catchUpSeconds, 0))) : gap
            for (rule, schedule) in schedules {
                if window > 0, let tick = schedule.previous(atOrBefore: now, window: window), tick > last {
                    try await fire(rule: rule, schedule: schedule, tick: tick)
                }
            }
            if gap > maxSleep + 60 {
                logger.warning("scheduler: the clock moved \(Int(gap)) s since the last pass; only the latest missed tick of each schedule fires")
            }
            last = max(last, now)
            let nextTick = schedules.compactMap { $0.schedule.next(after: now) }.min() ?? now.addingTimeInterval(maxSleep)
            // Shutdown cancels the sleep; that is the normal way out of this loop, not a failure.
            try? await cancelWhenGracefulShutdown {
                try await clock.sleep(until: min(nextTick, now.addingTimeInterval(maxSleep)))
            }
        }
    }

    /// Fires, once, the latest tick of each schedule that fell within the catch-up window before `now`.
    public func catchUp(at now: Date) async throws {
        let window = TimeInterval(live.snapshot.config.scheduler.catchUpSeconds)
        guard window > 0 else { return }
        for (rule, schedule) in Self.scheduled(live.snapshot.config) {
            if let tick = schedule.previous(atOrBefore: now, window: window) {
                try await fire(rule: rule, schedule: schedule, tick: tick)
            }
        }
    }

    /// Stores one tick as an event (a duplicate of an already fired tick stores nothing).
    func fire(rule: String, schedule: CronSchedule, tick: Date) async throws {
        let stamp = tick.formatted(.iso8601)
        var body = JSONText()
        body.add("rule", rule)
        body.add("tick", stamp)
        body.add("schedule", schedule.expression)
        body.add("timezone", schedule.timeZone.identifier)
        let now = clock.now()
        let event = InboundEvent(id: EventID.make(at: now), source: Self.sourceName, kind: "schedule",
                                 deliveryID: "schedule:\(rule):\(stamp)", headers: [:], body: Array(body.text.utf8),
                                 contentType: "application/json", receivedAt: now)
        let outcome = try await store.append(event)
        if case .stored(let id) = outcome {
            logger.info("schedule fired", metadata: ["rule": .string(rule), "tick": .string(stamp), "event_id": .string(id),
                                                     "delivery_id": .string(event.deliveryID)])
        }
    }
}
