/// `application/x-www-form-urlencoded` bodies (Slack slash commands, GitHub's form hooks).
public enum FormURLEncoded {
    /// A malformed form body.
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Decodes the fields in order; `+` is a space and `%XX` a byte; the result must be UTF-8.
    /// - Throws: `Failure` for a bad percent escape or invalid UTF-8.
    public static func decode(_ text: String) throws(Failure) -> [(name: String, value: String)] {
        var fields: [(String, String)] = []
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = try unescape(Substring(parts[0]))
            let value = parts.count > 1 ? try unescape(Substring(parts[1])) : ""
            fields.append((name, value))
        }
        return fields
    }

    /// Decodes into a dictionary (the first value of a repeated name wins).
    public static func dictionary(_ text: String) throws(Failure) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in try decode(text) where out[k] == nil { out[k] = v }
        return out
    }

    /// Percent-encodes a value for a form body.
    public static func escape(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                 UInt8(ascii: "*"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "): out += "+"
            default: out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    private static func unescape(_ s: Substring) throws(Failure) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = s.utf8.makeIterator()
        while let c = it.next() {
            switch c {
            case UInt8(ascii: "+"): bytes.append(0x20)
            case UInt8(ascii: "%"):
                guard let h = it.next(), let l = it.next(), let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else {
                    throw Failure(description: "bad percent escape in form field")
                }
                bytes.append(v)
            default: bytes.append(c)
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Failure(description: "form field is not valid UTF-8 after decoding")
        }
        return text
    }
}

extension String {
    fileprivate func leftPadded(to n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
