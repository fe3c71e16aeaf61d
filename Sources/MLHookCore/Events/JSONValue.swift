import Foundation

/// A decoded JSON document, addressable by dotted paths (`repository.owner.login`, `commits.0.id`).
public enum JSONValue: Sendable, Equatable, Hashable, Codable {
    case object([String: JSONValue])
    case array([JSONValue])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    /// Decodes JSON bytes; nil when they are not JSON.
    public init?(json bytes: [UInt8]) {
        guard let v = JSONValue.parse(bytes) else { return nil }
        self = v
    }

    /// The member or element at one path segment.
    public subscript(key: String) -> JSONValue? {
        switch self {
        case .object(let d): return d[key]
        case .array(let a):
            guard let i = Int(key), i >= 0, i < a.count else { return nil }
            return a[i]
        default: return nil
        }
    }

    /// The value at a dotted path, or nil when any segment is missing.
    public func value(at path: String) -> JSONValue? {
        var current: JSONValue? = self
        for segment in path.split(separator: ".", omittingEmptySubsequences: false) {
            current = current?[String(segment)]
        }
        return current
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var int: Int? { if case .number(let n) = self, n == n.rounded(), abs(n) < 9e15 { Int(n) } else { nil } }

    /// The value as text for templates and comparisons: strings as they are, numbers without a trailing `.0`,
    /// booleans as true/false, null as empty; objects and arrays as compact JSON.
    public var text: String {
        switch self {
        case .string(let s): return s
        case .number(let n): return n == n.rounded() && abs(n) < 9e15 ? String(Int(n)) : String(n)
        case .bool(let b): return b ? "true" : "false"
        case .null: return ""
        case .object, .array:
            let data = (try? JSONSerialization.data(withJSONObject: foundation, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// The Foundation form, for serialization.
    public var foundation: Any {
        switch self {
        case .object(let d): d.mapValues(\.foundation)
        case .array(let a): a.map(\.foundation)
        case .string(let s): s
        case .number(let n): n
        case .bool(let b): b
        case .null: NSNull()
        }
    }
}

extension JSONValue {
    // JSONDecoder never reads a number as a Bool or a Bool as a number, so the order below is safe on every
    // platform (NSNumber bridging would blur them).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .object(let d): try c.encode(d)
        case .array(let a): try c.encode(a)
        case .string(let s): try c.encode(s)
        case .number(let n): try c.encode(n)
        case .bool(let b): try c.encode(b)
        case .null: try c.encodeNil()
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral, ExpressibleByFloatLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(Dictionary(elements, uniquingKeysWith: { $1 })) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    /// The members of an object (empty for anything else).
    public var object: [String: JSONValue] { if case .object(let d) = self { d } else { [:] } }

    /// A copy with `key` set (objects only; other values become an object).
    public func setting(_ key: String, _ value: JSONValue?) -> JSONValue {
        var d = object
        d[key] = value
        return .object(d)
    }

    /// A copy with the value at a dotted path set, creating objects on the way.
    public func setting(path: String, _ value: JSONValue?) -> JSONValue {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        if parts.count == 1 { return setting(parts[0], value) }
        return setting(parts[0], (self[parts[0]] ?? .object([:])).setting(path: parts[1], value))
    }

    /// Looks a key up ignoring case (run definitions arrive in three casings).
    public func member(_ key: String) -> JSONValue? {
        if let v = self[key] { return v }
        return object.first { $0.key.caseInsensitiveCompare(key) == .orderedSame }?.value
    }

    /// A case-insensitive dotted lookup.
    public func member(path: String) -> JSONValue? {
        var current: JSONValue? = self
        for segment in path.split(separator: ".") { current = current?.member(String(segment)) }
        return current
    }

    /// Keys starting with `_` removed, recursively (internal bookkeeping never leaves the server).
    public var publicView: JSONValue {
        switch self {
        case .object(let d): .object(d.filter { !$0.key.hasPrefix("_") }.mapValues(\.publicView))
        case .array(let a): .array(a.map(\.publicView))
        default: self
        }
    }
}
