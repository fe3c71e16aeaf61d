import NIOCore
import Synchronization

/// Connections open per client address, shared by every connection's `ClientConnectionLimiter`: past `limit` from
/// one address, a new connection is closed as soon as it is accepted. Before, about 770 slow or idle connections
/// from one client filled `max_connections` and legitimate deliveries timed out in the backlog.
public final class ClientConnections: Sendable {
    private struct State {
        var open: [String: Int] = [:]
        var total = 0
        var refused = 0
    }

    private let state = Mutex(State())
    public let limit: Int

    public init(limit: Int) { self.limit = limit }

    /// Counts a new connection from `client`. - Returns: false (counting nothing) when the client has `limit` open.
    func open(_ client: String) -> Bool {
        state.withLock { s in
            guard s.open[client, default: 0] < limit else {
                s.refused += 1
                return false
            }
            s.open[client, default: 0] += 1
            s.total += 1
            return true
        }
    }

    func close(_ client: String) {
        state.withLock { s in
            let left = s.open[client, default: 0] - 1
            s.open[client] = left > 0 ? left : nil
            s.total -= 1
        }
    }

    /// Connections open now, and connections refused since start for passing the per-client limit.
    public var counts: (open: Int, refused: Int) { state.withLock { ($0.total, $0.refused) } }
}

/// The first handler of every HTTP connection: counts it against its client address and closes it at once when that
/// address already holds `ClientConnections.limit` connections.
final class ClientConnectionLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let connections: ClientConnections
    private var counted: String?

    init(_ connections: ClientConnections) { self.connections = connections }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { release() }

    private func admit(_ context: ChannelHandlerContext) {
        guard counted == nil else { return }
        let client = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if connections.open(client) {
            counted = client
        } else {
            context.close(promise: nil)
        }
    }

    private func release() {
        if let client = counted { connections.close(client) }
        counted = nil
    }
}
