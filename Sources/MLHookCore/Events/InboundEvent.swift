import Foundation

/// A verified webhook delivery on its way into the inbox.
public struct InboundEvent: Sendable, Equatable {
    /// The event's id (`evt_…`), assigned at ingress.
    public var id: String
    /// The configured source name.
    public var source: String
    /// The sender's event name (`push`, `Push Hook`, `repo:push`, a Slack command, …) or `unknown`.
    public var kind: String
    /// The sender's delivery id; with `source` the dedup key.
    public var deliveryID: String
    /// The headers worth keeping (event, delivery, user agent, hook ids); never signatures or tokens.
    public var headers: [String: String]
    /// The raw body exactly as received and verified.
    public var body: [UInt8]
    /// The request's content type.
    public var contentType: String
    /// When ingress accepted it.
    public var receivedAt: Date

    public init(id: String, source: String, kind: String, deliveryID: String, headers: [String: String],
                body: [UInt8], contentType: String, receivedAt: Date) {
        self.id = id
        self.source = source
        self.kind = kind
        self.deliveryID = deliveryID
        self.headers = headers
        self.body = body
        self.contentType = contentType
        self.receivedAt = receivedAt
    }
}

/// Where an event is in its life. Later stages (planned, ignored, done) are set by the planner and jobs.
public enum EventState: String, Sendable, Codable, CaseIterable {
    case received
    case planned
    case ignored
    case done
    case failed
}
