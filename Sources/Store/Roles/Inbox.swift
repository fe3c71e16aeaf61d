import Foundation
import MLHookCore

/// The durable inbox: where ingress appends verified deliveries and the planner records its verdicts.
///
/// Ingress and the planner depend on this role only. Every backend keeps the same promise: when `append`
/// returns, the event is committed at the store's configured durability, so the caller may acknowledge the
/// delivery; a delivery already stored under the same (source, delivery id) is reported as a duplicate and
/// creates nothing.
///
/// ```swift
/// let outcome = try await inbox.append(event, plan: verdict, jobs: jobs)
/// if case .duplicate(let id) = outcome { print("already stored as \(id)") }
/// ```
public protocol Inbox: Sendable {
    /// Stores an event durably, or finds the earlier event with the same (source, delivery id).
    ///
    /// With `plan`, the event is stored already planned: its verdict and `jobs` are written in the event's own
    /// transaction (only if the event is new; a duplicate creates nothing). Without, it is stored `received`
    /// and the planner picks it up.
    /// - Parameters:
    ///   - event: The verified delivery, with its id already minted.
    ///   - plan: The planner's verdict, when ingress planned the event before storing it.
    ///   - jobs: The verdict's jobs; a job whose idempotency key exists already is not created again.
    /// - Returns: `.stored` with the new id, or `.duplicate` with the id of the event already stored.
    /// - Throws: `StoreError`; `isRetryable` tells a sender's retry apart from a record that cannot be stored.
    func append(_ event: InboundEvent, plan: PlanVerdict?, jobs: [NewJob]) async throws -> AppendOutcome

    /// Events not yet planned, oldest first (schedule ticks, events stored by an older version).
    ///
    /// An event whose stored record cannot be read (a body that fails its checksum, say) is not returned and
    /// does not fail the others: it is parked, ended `failed` with a `Parked` reason.
    /// - Parameter limit: At most this many.
    func unplanned(limit: Int) async throws -> [StoredEvent]

    /// Records the planner's verdicts and creates their jobs in one transaction: `planned` with the planned
    /// actions (JSON), or `ignored`; each explanation says, rule by rule, why. A job whose idempotency key
    /// exists already is not created again (the same commit through two hooks, a redelivery).
    /// - Returns: How many jobs were created.
    @discardableResult
    func recordPlans(_ verdicts: [PlanVerdict], jobs: [NewJob]) async throws -> Int

    /// One event with its body, by id (a job reads the event that made it).
    func event(id: String) async throws -> StoredEvent?

    /// Deletes events received before `date`, which also forgets their dedup keys, with the finished jobs made
    /// before it (their attempts too) and the delivered or dead callbacks queued before it. Work still in
    /// progress (queued, running or watching jobs, pending callbacks) is kept whatever its age.
    /// - Returns: How many events were deleted.
    func prune(receivedBefore date: Date) async throws -> Int

    /// Whether the store answers queries (for `/readyz`).
    func isReady() async -> Bool
}

extension Inbox {
    /// Stores an event for the planner to plan.
    public func append(_ event: InboundEvent) async throws -> AppendOutcome {
        try await append(event, plan: nil, jobs: [])
    }
}
