import AMLLocal
import Foundation
import Logging
import ServiceLifecycle
import Store

/// Deletes events older than the retention period, at start and then hourly, with the finished jobs and
/// callbacks of that age, the git cache's repositories no job used in that time, and the embedded aml-local's
/// projects of runs that ended `runRetentionDays` ago. Dedup keys live as long as their events, so retention
/// (at least 7 days) is also the dedup window.
struct EventPruner: Service {
    let store: any Inbox
    let retentionDays: Int
    let now: @Sendable () -> Date
    let logger: Logger
    var git: GitSource?
    var amlLocal: AMLLocal?
    var runRetentionDays = 30

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
            pruneFiles(cutoff: cutoff)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3600)) }
        }
    }

    /// The git cache and aml-local's run projects, with the same cutoff (shifted by the difference in retention,
    /// so it keeps the same bound on a clock step).
    func pruneFiles(cutoff: Date) {
        if let n = git?.pruneCache(unusedSince: cutoff), n > 0 {
            logger.info("pruned \(n) cached repositories no job used in \(retentionDays) days")
        }
        guard let amlLocal else { return }
        do {
            let n = try amlLocal.pruneRuns(endedBefore: cutoff.addingTimeInterval(Double(retentionDays - runRetentionDays) * 86_400))
            if n > 0 { logger.info("aml-local: pruned the projects of \(n) runs that ended over \(runRetentionDays) days ago") }
        } catch {
            logger.error("aml-local: pruning run projects failed: \(error)")
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
