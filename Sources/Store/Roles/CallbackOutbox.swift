import Foundation

/// The durable callback outbox: callbacks queued with their job's outcome, delivered and retried by the
/// deliverer, then delivered or dead-lettered.
public protocol CallbackOutbox: Sendable {
    /// Queues a callback (once per job and target: a second enqueue is ignored), unless the event already
    /// has `maxPerURL` callbacks to the same URL (counted inside the write transaction).
    /// - Returns: Whether it was queued.
    @discardableResult
    func enqueueCallback(_ callback: NewCallback) async throws -> Bool

    /// Claims the pending callbacks whose next attempt is due, oldest first: no other deliverer (on any replica)
    /// gets them for `CallbackRecord.claimSeconds`, unless their delivery is recorded first.
    func dueCallbacks(now: Date, limit: Int) async throws -> [CallbackRecord]

    /// Records a delivery attempt: delivered, retried at `retryAt` (`pending`), or dead.
    func recordDelivery(id: String, state: CallbackState, status: Int?, error: String?, retryAt: Date?) async throws
}
