import Foundation
import Logging
import MLHookCore
import Synchronization

/// Group commit for PostgreSQL ingest: deliveries that arrive while a transaction is in flight wait and go
/// together in the next one (at most `maxBatch`), so N concurrent deliveries cost one round of statements'
/// commit and one WAL flush. Each caller resumes when the transaction holding its event has committed.
///
/// Back-pressure: at most `maxQueued` deliveries wait; past that, `submit` fails at once as `.busy` (ingress
/// answers 503). A delivery whose caller gave up (its deadline passed, it was answered 503) is dropped from the
/// queue before its batch starts.
final class IngestBatcher: Sendable {
    struct Item: Sendable {
        let event: PendingEvent
        let continuation: CheckedContinuation<AppendOutcome, any Error>
        let deadline: ContinuousClock.Instant
    }
    private struct State {
        var queue: [Item] = []
        /// Batches being committed now (at most `maxInFlight`).
        var flushers = 0
        var commit: (@Sendable ([PendingEvent]) async throws -> [AppendOutcome])?
    }
    private let state = Mutex(State())
    let maxBatch: Int
    let maxQueued: Int
    /// Transactions in flight at once: while one waits for its WAL flush, the next batch is already being written.
    let maxInFlight: Int
    let logger: Logger

    init(maxBatch: Int = 128, maxQueued: Int = 4096, maxInFlight: Int = 2, logger: Logger) {
        self.maxInFlight = maxInFlight
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.logger = logger
    }

    /// The transaction that stores a batch (set once by the store).
    var commit: (@Sendable ([PendingEvent]) async throws -> [AppendOutcome])? {
        get { state.withLock { $0.commit } }
        set { state.withLock { $0.commit = newValue } }
    }

    func submit(_ event: PendingEvent, deadline: ContinuousClock.Instant) async throws -> AppendOutcome {
        try await withCheckedThrowingContinuation { c in
            let (start, full) = state.withLock { s -> (Bool, Bool) in
                guard s.queue.count < maxQueued else { return (false, true) }
                s.queue.append(Item(event: event, continuation: c, deadline: deadline))
                if s.flushers >= maxInFlight { return (false, false) }
                s.flushers += 1
                return (true, false)
            }
            if full {
                c.resume(throwing: StoreError(.busy, "store an event", "\(maxQueued) deliveries are already waiting for the database"))
            } else if start {
                Task { await self.flush() }
            }
        }
    }

    private func flush() async {
        while true {
            let (batch, commit) = state.withLock { s -> ([Item], (@Sendable ([PendingEvent]) async throws -> [AppendOutcome])?) in
                let now = ContinuousClock.now
                // Callers already answered (their deadline passed) are not stored behind their back.
                var expired: [Item] = []
                s.queue.removeAll { item in
                    if item.deadline < now { expired.append(item); return true }
                    return false
                }
                for item in expired {
                    item.continuation.resume(throwing: StoreError(.unavailable, "store an event", "the database did not answer in time"))
                }
                let n = min(maxBatch, s.queue.count)
                let batch = Array(s.queue.prefix(n))
                s.queue.removeFirst(n)
                if batch.isEmpty { s.flushers -= 1 }
                return (batch, s.commit)
            }
            if batch.isEmpty { return }
            guard let commit else {
                for item in batch { item.continuation.resume(throwing: StoreError(.unavailable, "store an event", "the store is closed")) }
                continue
            }
            do {
                let outcomes = try await commit(batch.map(\.event))
                for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(returning: outcome) }
            } catch where batch.count > 1 && ((error as? StoreError)?.code ?? PostgresStore.classify(error)) == .badRecord {
                // The database refused what one record holds (a data or constraint error, not the connection): the
                // batch is committed again one record at a time, so only that record fails, never its batch-mates.
                for item in batch {
                    do {
                        let outcome = try await commit([item.event])
                        item.continuation.resume(returning: outcome[0])
                    } catch {
                        item.continuation.resume(throwing: error)
                    }
                }
            } catch {
                for item in batch { item.continuation.resume(throwing: error) }
            }
        }
    }
}

/// An event with its columns encoded before it joins a batch.
struct PendingEvent: Sendable {
    let event: InboundEvent
    let headers: String
    let plan: PlanVerdict?
    let jobs: [NewJob]
    let now: Date
}
