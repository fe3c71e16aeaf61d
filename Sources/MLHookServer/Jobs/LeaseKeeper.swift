import Foundation
import Logging
import Store

/// Keeps a claimed job's lease while its action runs: renews it every third of its length, so a long action (a
/// compute scale waiting up to 20 minutes, a slow scoring call) is not claimed a second time when `lease`
/// seconds pass. When the lease is lost (renewal refused: the job was released and claimed again), the action is
/// cancelled and `LeaseLost` thrown; the worker then writes nothing, and the store's fencing refuses it anyway.
struct LeaseKeeper: Sendable {
    let queue: any JobQueue
    let lease: TimeInterval
    let now: @Sendable () -> Date
    let logger: Logger

    /// The job's lease was lost while its action ran: another worker owns the job.
    struct LeaseLost: Error, CustomStringConvertible {
        let jobID: String
        var description: String { "the lease on job \(jobID) was lost while its action ran; another worker owns it now" }
    }

    /// Runs `work` while renewing `job`'s lease. - Throws: `LeaseLost`, or what `work` throws.
    func run<T: Sendable>(_ job: JobRecord, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let token = job.leaseToken else { return try await work() }
        let interval = max(0.05, lease / 3)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                var held = now().addingTimeInterval(lease)
                while true {
                    do { try await Task.sleep(for: .seconds(interval)) } catch { return nil }  // the action ended
                    do {
                        let until = now().addingTimeInterval(lease)
                        guard try await queue.renewLease(id: job.id, leaseToken: token, until: until) else { throw LeaseLost(jobID: job.id) }
                        held = until
                    } catch let lost as LeaseLost {
                        throw lost
                    } catch {
                        // The store is unreachable for a moment: keep trying while the lease still holds.
                        if Task.isCancelled { return nil }
                        logger.warning("could not renew the lease of job \(job.id): \(error)")
                        if now() >= held { throw LeaseLost(jobID: job.id) }
                    }
                }
            }
            while let next = try await group.next() {
                if let value = next {
                    group.cancelAll()
                    return value
                }
            }
            throw CancellationError()
        }
    }
}
