import Synchronization

/// Bytes of request bodies being received at once, over every request: a body is read only once its size (or the
/// most it may be) is reserved here, so authenticated uploads together stay under `limit` however many arrive.
final class InflightBytes: Sendable {
    private let used = Mutex(0)
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Reserves `bytes`. - Returns: false when that would pass the limit (nothing is reserved then).
    func reserve(_ bytes: Int) -> Bool {
        used.withLock { u in
            guard u + bytes <= limit else { return false }
            u += bytes
            return true
        }
    }

    func release(_ bytes: Int) { used.withLock { $0 -= bytes } }

    var current: Int { used.withLock { $0 } }
}
