import Synchronization

/// Bytes of request bodies held in memory at once, over all requests still being read and verified, and per client
/// address: no client may hold more than `perClient` of the `limit`, so a client that opens connections and trickles
/// their bodies cannot take the whole budget from the others.
///
/// Readers reserve bytes as they arrive (`reserve`, chunk by chunk), not the length a request declares: before, six
/// connections declaring 22 MB each and sending a byte at a time held the whole 128 MiB for their read timeout, and
/// every signed delivery meanwhile got 503.
package final class BodyBudget: Sendable {
    private struct State {
        var used = 0
        var byClient: [String: Int] = [:]
    }

    private let state = Mutex(State())
    package let limit: Int
    package let perClient: Int

    package init(limit: Int, perClient: Int? = nil) {
        self.limit = limit
        self.perClient = perClient ?? limit
    }

    /// Reserves `bytes` for `client`. - Returns: false, reserving nothing, when that would pass the limit or the
    /// client's share.
    package func reserve(_ bytes: Int, client: String = "") -> Bool {
        state.withLock { s in
            let mine = s.byClient[client, default: 0]
            guard bytes >= 0, s.used + bytes <= limit, mine + bytes <= perClient else { return false }
            s.used += bytes
            s.byClient[client] = mine + bytes
            return true
        }
    }

    /// Whether `bytes` more could be reserved for `client` now (nothing is reserved).
    package func fits(_ bytes: Int, client: String = "") -> Bool {
        state.withLock { s in s.used + bytes <= limit && s.byClient[client, default: 0] + bytes <= perClient }
    }

    /// Gives back what `reserve` took.
    package func release(_ bytes: Int, client: String = "") {
        state.withLock { s in
            s.used -= bytes
            let left = s.byClient[client, default: 0] - bytes
            s.byClient[client] = left > 0 ? left : nil
        }
    }

    /// Bytes held now, over all clients.
    package var used: Int { state.withLock { $0.used } }
}
