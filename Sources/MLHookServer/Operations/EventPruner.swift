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
        while !Task.isCancelledOrShuttingDown {
            let cutoff = now().addingTimeInterval(-Double(retentionDays) * 86_400)
            do {
                let n = try await store.prune(receivedBefore: cutoff)
                if n > 0 { logger.info("pruned \(n) events older than \(retentionDays) days") }
            } catch {
                logger.error("pruning events failed: \(error)")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3600)) }
        }
    }
}
