import Foundation
@testable import MLHookServer
import Store
import TestSupport
import Testing

/// A wall clock stepped forward (NTP, a VM resumed) must not fire every schedule tick in between, nor make the
/// pruner delete everything older than the new "now"; and made-up event names must not grow /metrics.
@Suite struct ClockJumpTests {
    static let everyMinute = """
        sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
        scheduler: { catch_up_seconds: 3600 }
        rules:
          - name: minutely
            when: { schedule: "* * * * *", timezone: UTC }
            actions: [ { scale_compute: { name: cpu, max_nodes: 1 } } ]
        """

    @Test func aForwardClockStepFiresOnlyTheLatestMissedTick() async throws {
        let h = try IngressHarness(config: Self.everyMinute)
        defer { h.dir.remove() }
        let start = ISO8601DateFormatter().date(from: "2026-11-22T10:00:30Z")!
        let clock = ManualClock(start)
        let scheduler = Scheduler(store: h.store, live: h.runtime.live, clock: clock, logger: h.logs.logger(), maxSleep: 1)
        let task = Task { try await scheduler.run() }
        defer { task.cancel() }
        // The start's catch-up fires 10:00.
        #expect(try await eventually(timeout: .seconds(30)) { try await h.store.list(limit: nil, source: "schedule").count == 1 })
        // Two days pass in one step: one tick (the latest), not 2,880.
        clock.advance(to: start.addingTimeInterval(2 * 86_400))
        #expect(try await eventually(timeout: .seconds(30)) { try await h.store.list(limit: nil, source: "schedule").count == 2 })
        try await Task.sleep(for: .milliseconds(200))
        let ticks = try await h.store.list(limit: nil, source: "schedule").map(\.deliveryID)
        #expect(ticks == ["schedule:minutely:2026-11-24T10:00:00Z", "schedule:minutely:2026-11-22T10:00:00Z"], "\(ticks)")
        // The next minute fires as usual.
        clock.advance(to: start.addingTimeInterval(2 * 86_400 + 60))
        #expect(try await eventually(timeout: .seconds(30)) { try await h.store.list(limit: nil, source: "schedule").count == 3 })
    }

    @Test func thePrunersCutoffAdvancesNoFasterThanMonotonicTime() {
        let now = Date(timeIntervalSince1970: 1_900_000_000)
        let first = EventPruner.cutoff(now: now, retentionDays: 30, previous: nil, elapsed: nil)
        #expect(first == now.addingTimeInterval(-30 * 86_400))
        // An hour later by the monotonic clock, the wall clock says a year later: the cutoff moves an hour (and a minute).
        let jumped = EventPruner.cutoff(now: now.addingTimeInterval(365 * 86_400), retentionDays: 30, previous: (first, .now), elapsed: .seconds(3600))
        #expect(jumped == first.addingTimeInterval(3660))
        // Without a jump it is the usual one.
        let steady = EventPruner.cutoff(now: now.addingTimeInterval(3600), retentionDays: 30, previous: (first, .now), elapsed: .seconds(3600))
        #expect(steady == now.addingTimeInterval(3600 - 30 * 86_400))
    }

    @Test func eventNamesAreBoundedMetricLabels() {
        #expect(MetricLabels.kind("push") == "push" && MetricLabels.kind("Push Hook") == "Push Hook" && MetricLabels.kind("repo:push") == "repo:push")
        #expect(MetricLabels.kind("x-\(UUID().uuidString)") == "other")
        #expect(MetricLabels.kind(String(repeating: "a", count: 5000)) == "other")
        #expect(MetricLabels.kind("/aml") == "command")
    }
}
