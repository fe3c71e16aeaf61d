import Synchronization

/// Bytes of request bodies held in memory at once, over all requests still being read and verified.
final class BodyBudget: Sendable {
    private let used = Mutex(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Reserves `bytes`. - Returns: false, reserving nothing, when that would pass the limit.
    func reserve(_ bytes: Int) -> Bool {
        used.withLock { u in
            guard bytes >= 0, u + bytes <= limit else { return false }
            u += bytes
            return true
        }
    }

    /// Gives back what `reserve` took.
    func release(_ bytes: Int) { used.withLock { $0 -= bytes } }
}
