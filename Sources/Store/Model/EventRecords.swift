import Foundation
import MLHookCore

/// Which events to list. `before` pages: only rows older than the one with that id.
public struct EventQuery: Sendable, Equatable {
    /// At most this many (nil: all).
    public var limit: Int?
    /// Only events of this source.
    public var source: String?
    /// Only events of this kind (the sender's event name).
    public var kind: String?
    /// Only events in this state.
    public var state: EventState?
    /// Only events stored before the one with this id (the next page).
    public var before: String?
    public init(limit: Int? = nil, source: String? = nil, kind: String? = nil, state: EventState? = nil, before: String? = nil) {
        self.limit = limit; self.source = source; self.kind = kind; self.state = state; self.before = before
    }
}

/// The result of `Inbox.append`.
public enum AppendOutcome: Sendable, Equatable {
    /// Newly stored under this id.
    case stored(id: String)
    /// Already stored under this id; nothing new was written.
    case duplicate(id: String)

    /// The event id either way.
    public var id: String {
        switch self {
        case .stored(let id), .duplicate(let id): id
        }
    }
}

/// The planner's verdict on one event.
public struct PlanVerdict: Sendable, Equatable {
    public var id: String
    public var state: EventState
    /// The planned actions (JSON), when any rule matched.
    public var plan: String?
    /// Rule by rule, why each matched or not.
    public var explanation: String

    public init(id: String, state: EventState, plan: String?, explanation: String) {
        self.id = id
        self.state = state
        self.plan = plan
        self.explanation = explanation
    }
}

/// One line of an event listing.
public struct EventSummary: Sendable, Equatable, Codable {
    public var id: String
    public var source: String
    public var kind: String
    /// The sender's delivery id; with `source`, the dedup key.
    public var deliveryID: String
    public var state: EventState
    /// When ingress accepted it.
    public var receivedAt: Date
    /// The size of the raw body.
    public var bodyBytes: Int

    public init(id: String, source: String, kind: String, deliveryID: String, state: EventState, receivedAt: Date, bodyBytes: Int) {
        self.id = id; self.source = source; self.kind = kind; self.deliveryID = deliveryID
        self.state = state; self.receivedAt = receivedAt; self.bodyBytes = bodyBytes
    }

    enum CodingKeys: String, CodingKey {
        case id, source, kind, state
        case deliveryID = "delivery_id"
        case receivedAt = "received_at"
        case bodyBytes = "body_bytes"
    }
}

/// A stored event with everything ingress kept.
public struct StoredEvent: Sendable, Equatable, Codable {
    /// Id, source, kind, delivery, state, time and size.
    public var summary: EventSummary
    /// The headers ingress kept (never signatures or tokens).
    public var headers: [String: String]
    /// The request's content type.
    public var contentType: String
    /// The raw body exactly as received and verified.
    public var body: [UInt8]
    /// Rule by rule, why each matched or not, once the planner has run.
    public var explanation: String?
    /// The planned actions (JSON), when any rule matched.
    public var plan: String?

    public init(summary: EventSummary, headers: [String: String], contentType: String, body: [UInt8], explanation: String?, plan: String?) {
        self.summary = summary; self.headers = headers; self.contentType = contentType; self.body = body
        self.explanation = explanation; self.plan = plan
    }

    enum CodingKeys: String, CodingKey {
        case headers, explanation, plan, body
        case contentType = "content_type", bodyBase64 = "body_base64"
    }

    /// The summary's fields, then these; the body as text when it is UTF-8, else as `body_base64`.
    public func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(headers, forKey: .headers)
        try c.encode(contentType, forKey: .contentType)
        if let text = String(validating: body, as: UTF8.self) { try c.encode(text, forKey: .body) }
        else { try c.encode(Data(body).base64EncodedString(), forKey: .bodyBase64) }
        try c.encodeIfPresent(explanation, forKey: .explanation)
        try c.encodeIfPresent(plan, forKey: .plan)
    }

    public init(from decoder: any Decoder) throws {
        summary = try EventSummary(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        headers = try c.decode([String: String].self, forKey: .headers)
        contentType = try c.decode(String.self, forKey: .contentType)
        if let text = try c.decodeIfPresent(String.self, forKey: .body) { body = Array(text.utf8) }
        else { body = [UInt8](Data(base64Encoded: try c.decode(String.self, forKey: .bodyBase64)) ?? Data()) }
        explanation = try c.decodeIfPresent(String.self, forKey: .explanation)
        plan = try c.decodeIfPresent(String.self, forKey: .plan)
    }
}
