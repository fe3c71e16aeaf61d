/// A minimal JSON writer for the flat objects on the ingest hot path (stored headers, 2xx responses).
///
/// `JSONSerialization` costs about 14% of ingest CPU through `Any` casts; these objects hold only strings,
/// integers and booleans, so they are written directly.
public struct JSONText {
    private var out = "{"
    private var first = true

    public init() {}

    /// Adds a string member.
    public mutating func add(_ key: String, _ value: String) {
        separator()
        Self.appendString(key, to: &out)
        out += ":"
        Self.appendString(value, to: &out)
    }

    /// Adds a boolean member.
    public mutating func add(_ key: String, _ value: Bool) {
        separator()
        Self.appendString(key, to: &out)
        out += value ? ":true" : ":false"
    }

    /// Adds an integer member.
    public mutating func add(_ key: String, _ value: Int) {
        separator()
        Self.appendString(key, to: &out)
        out += ":" + String(value)
    }

    private mutating func separator() {
        if first { first = false } else { out += "," }
    }

    /// The finished object.
    public var text: String { out + "}" }

    /// An object of string members, keys sorted.
    public static func object(_ members: [String: String]) -> String {
        var j = JSONText()
        for (k, v) in members.sorted(by: { $0.key < $1.key }) { j.add(k, v) }
        return j.text
    }

    /// Appends `s` as a JSON string literal, escaping quotes, backslashes and control characters.
    public static func appendString(_ s: String, to out: inout String) {
        out += "\""
        var needsEscape = false
        for b in s.utf8 where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
            needsEscape = true
            break
        }
        if !needsEscape {
            out += s
        } else {
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
