import Foundation
import Logging
import ServiceLifecycle
import Store

/// Deletes events older than the retention period, at start and then hourly. Dedup keys live as long as
/// their events, so retention (at least 7 days) is also the dedup window.
struct EventPruner: Service {
    let store: any Inbox
    let retentionDays: Int
    let now: @Sendable () -> Date
    let logger: Logger

    func run() async throws {
        var previous: (cutoff: Date, at: ContinuousClock.Instant)?
        while !Task.isCancelledOrShuttingDown {
            let cutoff = Self.cutoff(now: now(), retentionDays: retentionDays, previous: previous, elapsed: previous.map { ContinuousClock.now - $0.at })
            previous = (cutoff, ContinuousClock.now)
            do {
                let n = try await store.prune(receivedBefore: cutoff)
                if n > 0 { logger.info("pruned \(n) events older than \(retentionDays) days") }
            } catch {
                logger.error("pruning events failed: \(error)")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3600)) }
        }
    }

    /// The pruning cutoff: `retentionDays` before now, but never more than the monotonic time elapsed (plus a
    /// minute) past the previous cutoff, so a wall clock stepped forward cannot delete everything at once.
    static func cutoff(now: Date, retentionDays: Int, previous: (cutoff: Date, at: ContinuousClock.Instant)?, elapsed: Duration?) -> Date {
        let wanted = now.addingTimeInterval(-Double(retentionDays) * 86_400)
        guard let previous, let elapsed else { return wanted }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return min(wanted, previous.cutoff.addingTimeInterval(seconds + 60))
    }
}
