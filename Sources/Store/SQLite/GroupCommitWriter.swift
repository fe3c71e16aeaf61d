import Foundation
import GRDB
import Logging

/// A dedicated thread that commits queued work in batches: one transaction, and so one WAL fsync, for every
/// item that arrived while the previous transaction was committing.
///
/// The loop never leaves its thread between commits. An async design that awaited each `pool.write` would
/// resume on a busy event loop before it could start the next commit, and that delay, not SQLite, limited
/// ingest throughput (measured with bench/ingest.sh).
final class GroupCommitWriter<Item: Sendable, Outcome: Sendable>: @unchecked Sendable {
    // @unchecked Sendable is safe: `queue` and `stopped` are only touched with `condition` locked; `pool` is
    // a thread-safe GRDB DatabasePool; `commit` is an immutable @Sendable closure.
    private let condition = NSCondition()
    private var queue: [(Item, CheckedContinuation<Outcome, any Error>)] = []
    private var stopped = false
    private let pool: DatabasePool
    private let maxBatch: Int
    private let maxQueued: Int
    private let commit: @Sendable (Database, [Item]) throws -> [Outcome]
    private let logger: Logger

    /// Starts the writer thread.
    /// - Parameters:
    ///   - pool: The database.
    ///   - maxBatch: Most items per transaction.
    ///   - maxQueued: Most items waiting; past it `submit` fails at once with a retryable `.busy` (ingress answers
    ///     503, so the sender retries later) instead of the queue, and the memory its bodies hold, growing.
    ///   - name: The thread's name (shows in `top -H` and profilers).
    ///   - commit: Writes a batch inside one transaction and returns one outcome per item, in order.
    init(pool: DatabasePool, maxBatch: Int, maxQueued: Int = 4096, name: String, logger: Logger,
         commit: @escaping @Sendable (Database, [Item]) throws -> [Outcome]) {
        self.pool = pool
        self.maxBatch = maxBatch
        self.maxQueued = maxQueued
        self.commit = commit
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Queues an item and waits until the transaction holding it has committed.
    func submit(_ item: Item) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            if stopped {
                condition.unlock()
                continuation.resume(throwing: CancellationError())
                return
            }
            if queue.count >= maxQueued {
                condition.unlock()
                continuation.resume(throwing: StoreError(.busy, "append", "\(maxQueued) writes are already waiting for the disk; retry shortly"))
                return
            }
            queue.append((item, continuation))
            condition.signal()
            condition.unlock()
        }
    }

    /// Stops the thread after it has committed what is queued.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            if queue.isEmpty && stopped {
                condition.unlock()
                return
            }
            let take = min(queue.count, maxBatch)
            let batch = Array(queue.prefix(take))
            queue.removeFirst(take)
            condition.unlock()

            do {
                let items = batch.map(\.0)
                // IMMEDIATE: the write lock is taken at BEGIN, so `commit` runs holding it from its first statement
                // (the body log appends before the first INSERT, and another process must not append meanwhile).
                let outcomes = try pool.writeWithoutTransaction { db in
                    var outcomes: [Outcome] = []
                    try db.inTransaction(.immediate) {
                        outcomes = try commit(db, items)
                        return .commit
                    }
                    return outcomes
                }
                for (entry, outcome) in zip(batch, outcomes) { entry.1.resume(returning: outcome) }
            } catch {
                logger.error("store: commit of \(batch.count) items failed: \(error)")
                for entry in batch { entry.1.resume(throwing: StoreError("append", error, classify: SQLiteStore.classify)) }
            }
        }
    }
}
