import NIOCore
import NIOHTTPTypes

/// Closes a connection that has not delivered a whole request, headers and body, within `limit` of being ready
/// for one (accepted, or its previous response sent).
///
/// The idle timeout alone restarts on every byte, so a sender trickling one byte every few seconds would hold a
/// connection, and the body budget it reserved, for ever. The clock stops when a request's last byte is read and
/// starts again only when every request read so far has been answered, so a slow response never counts.
final class RequestReadDeadline: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limit: TimeAmount
    /// The request's head must arrive sooner (slow-header senders are closed after this).
    private let headLimit: TimeAmount
    private var timer: Scheduled<Void>?
    private var headTimer: Scheduled<Void>?
    private var requestsRead = 0
    private var responsesSent = 0

    init(limit: TimeAmount, headLimit: TimeAmount? = nil) {
        self.limit = limit
        self.headLimit = headLimit ?? limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { disarm() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            headTimer?.cancel()
            headTimer = nil
        case .end:
            requestsRead += 1
            disarm()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            responsesSent += 1
            if responsesSent >= requestsRead { arm(context) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer?.cancel()
        headTimer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: limit) {
            channel.close(promise: nil)
        }
        headTimer = context.eventLoop.assumeIsolated().scheduleTask(in: headLimit) {
            channel.close(promise: nil)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
        headTimer?.cancel()
        headTimer = nil
    }
}
