import Foundation
import Synchronization

/// Runs an operation with a time limit that holds even when the operation does not notice cancellation (a
/// PostgresNIO pool request for an unreachable server waits for its 60 s circuit breaker): the caller gets
/// `Expired` at the deadline and the operation is cancelled and left to finish on its own.
enum Deadline {
    struct Expired: Error, CustomStringConvertible {
        let operation: String
        let limit: Duration
        var description: String { "no answer from the database within \(limit) (\(operation))" }
    }

    static func run<T: Sendable>(_ limit: Duration, _ operation: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let once = Once<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                once.set(continuation)
                let work = Task {
                    do { once.resume(.success(try await body())) } catch { once.resume(.failure(error)) }
                }
                let timer = Task {
                    try? await Task.sleep(for: limit)
                    if !Task.isCancelled, once.resume(.failure(Expired(operation: operation, limit: limit))) { work.cancel() }
                }
                once.onResume { timer.cancel() }
                once.onCancel { work.cancel() }
            }
        } onCancel: {
            once.cancel()
        }
    }

    /// A continuation resumed exactly once, by whichever of the work, the timer or a cancellation comes first.
    private final class Once<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var done = false
            var cancelled = false
            var onResume: [@Sendable () -> Void] = []
            var onCancel: [@Sendable () -> Void] = []
        }
        private let state = Mutex(State())

        func set(_ c: CheckedContinuation<T, any Error>) {
            let cancelled = state.withLock { s in
                s.continuation = c
                return s.cancelled
            }
            if cancelled { _ = resume(.failure(CancellationError())) }
        }

        func onResume(_ f: @escaping @Sendable () -> Void) {
            let done = state.withLock { s in
                if !s.done { s.onResume.append(f) }
                return s.done
            }
            if done { f() }
        }

        func onCancel(_ f: @escaping @Sendable () -> Void) {
            let cancelled = state.withLock { s in
                if !s.cancelled { s.onCancel.append(f) }
                return s.cancelled
            }
            if cancelled { f() }
        }

        func cancel() {
            let handlers = state.withLock { s in
                s.cancelled = true
                return s.onCancel
            }
            for h in handlers { h() }
        }

        /// - Returns: whether this call resumed it.
        @discardableResult
        func resume(_ result: Result<T, any Error>) -> Bool {
            let taken: (CheckedContinuation<T, any Error>, [@Sendable () -> Void])? = state.withLock { s in
                guard !s.done, let c = s.continuation else { return nil }
                s.done = true
                s.continuation = nil
                return (c, s.onResume)
            }
            guard let (c, handlers) = taken else { return false }
            c.resume(with: result)
            for h in handlers { h() }
            return true
        }
    }
}

/// Wakes waiting workers at once when jobs became runnable (a NOTIFY), else after their poll interval.
final class WakeSignal: Sendable {
    private struct State {
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        /// Waiters woken (timer, cancellation) before they registered: they return as soon as they do.
        var early: Set<UInt64> = []
        var next: UInt64 = 0
    }
    private let state = Mutex(State())

    /// Wakes every waiter.
    func fire() {
        let all = state.withLock { s in
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for c in all { c.resume() }
    }

    /// Returns at the next `fire()`, after `limit`, or when the task is cancelled.
    func wait(upTo limit: Duration) async {
        let id = state.withLock { s in
            s.next += 1
            return s.next
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: limit)
            wake(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s in
                    if s.early.remove(id) != nil { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            wake(id)
        }
        timer.cancel()
        _ = state.withLock { $0.early.remove(id) }
    }

    private func wake(_ id: UInt64) {
        let c = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let c = s.waiters.removeValue(forKey: id) { return c }
            s.early.insert(id)
            return nil
        }
        c?.resume()
    }
}
