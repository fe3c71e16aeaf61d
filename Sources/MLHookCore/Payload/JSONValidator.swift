/// A single-pass, allocation-light JSON syntax check (RFC 8259) with a nesting limit.
///
/// Ingress validates every JSON body before storing it, at tens of thousands of requests per second, so this
/// checks syntax without building objects. It is iterative, so a deeply nested body cannot overflow the
/// stack; it fails at the first byte past `maxDepth` levels. It also checks UTF-8: bytes of 0x80 and above
/// can only stand inside strings, where each sequence is validated (no overlongs, surrogates or values past
/// U+10FFFF), so a body that passes is valid UTF-8 without a separate pass.
public enum JSONValidator {
    /// Why a body is not acceptable JSON.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case syntax(offset: Int, expected: String)
        case tooDeep(limit: Int)
        case notAnObject
        case invalidUTF8(offset: Int)

        public var description: String {
            switch self {
            case .syntax(let offset, let expected): "invalid JSON at byte \(offset): expected \(expected)"
            case .tooDeep(let limit): "JSON nests deeper than \(limit) levels"
            case .notAnObject: "expected a JSON object at the top level"
            case .invalidUTF8(let offset): "the body is not valid UTF-8 (byte \(offset))"
            }
        }
    }

    private enum State { case value, arrayValueOrEnd, keyOrEnd, key, colon, afterValue }

    /// Validates `bytes` as one JSON object.
    /// - Throws: `Failure` with the byte offset of the first problem.
    public static func validateObject(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 128) throws(Failure) {
        let b = bytes.bindMemory(to: UInt8.self)
        let n = b.count
        var i = 0
        func skipSpace() {
            while i < n, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }
        skipSpace()
        guard i < n, b[i] == UInt8(ascii: "{") else { throw .notAnObject }
        // true = object, false = array
        var stack: [Bool] = []
        stack.reserveCapacity(16)
        var state = State.value
        while true {
            skipSpace()
            if state == .afterValue && stack.isEmpty {
                guard i == n else { throw .syntax(offset: i, expected: "end of input") }
                return
            }
            guard i < n else { throw .syntax(offset: i, expected: "more input (the body ends early)") }
            let c = b[i]
            switch state {
            case .value, .arrayValueOrEnd:
                if state == .arrayValueOrEnd && c == UInt8(ascii: "]") {
                    stack.removeLast(); i += 1; state = .afterValue; continue
                }
                switch c {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    guard stack.count < maxDepth else { throw .tooDeep(limit: maxDepth) }
                    stack.append(c == UInt8(ascii: "{"))
                    i += 1
                    state = c == UInt8(ascii: "{") ? .keyOrEnd : .arrayValueOrEnd
                case UInt8(ascii: "\""):
                    try scanString(b, &i); state = .afterValue
                case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                    try scanNumber(b, &i); state = .afterValue
                case UInt8(ascii: "t"): try literal(b, &i, "true"); state = .afterValue
                case UInt8(ascii: "f"): try literal(b, &i, "false"); state = .afterValue
                case UInt8(ascii: "n"): try literal(b, &i, "null"); state = .afterValue
                default: throw .syntax(offset: i, expected: "a value")
                }
            case .keyOrEnd, .key:
                if state == .keyOrEnd && c == UInt8(ascii: "}") {
                    stack.removeLast(); i += 1; state = .afterValue; continue
                }
                guard c == UInt8(ascii: "\"") else { throw .syntax(offset: i, expected: "a string key") }
                try scanString(b, &i)
                state = .colon
            case .colon:
                guard c == UInt8(ascii: ":") else { throw .syntax(offset: i, expected: "':'") }
                i += 1
                state = .value
            case .afterValue:
                let inObject = stack[stack.count - 1]
                if c == UInt8(ascii: ",") {
                    i += 1; state = inObject ? .key : .value
                } else if c == UInt8(ascii: inObject ? "}" : "]") {
                    stack.removeLast(); i += 1; state = .afterValue
                } else {
                    throw .syntax(offset: i, expected: inObject ? "',' or '}'" : "',' or ']'")
                }
            }
        }
    }

    private static func scanString(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws(Failure) {
        i += 1
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return }
            if c < 0x20 { throw .syntax(offset: i, expected: "no control characters inside a string") }
            if c >= 0x80 {
                try scanUTF8(b, &i)
                continue
            }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { break }
                switch b[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                case UInt8(ascii: "u"):
                    guard i + 4 < b.count, (1...4).allSatisfy({ isHex(b[i + $0]) }) else {
                        throw .syntax(offset: i, expected: "four hex digits after \\u")
                    }
                    i += 5
                default:
                    throw .syntax(offset: i, expected: "a valid escape")
                }
                continue
            }
            i += 1
        }
        throw .syntax(offset: i, expected: "a closing '\"' (the body ends inside a string)")
    }

    /// Validates one multi-byte UTF-8 sequence starting at `i` (RFC 3629 table 3-7) and steps past it.
    private static func scanUTF8(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws(Failure) {
        let c = b[i]
        let start = i
        var need: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F
        case 0xF0: need = 3; lo = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F
        default: throw .invalidUTF8(offset: start)
        }
        i += 1
        while need > 0 {
            guard i < b.count, b[i] >= lo, b[i] <= hi else { throw .invalidUTF8(offset: start) }
            lo = 0x80; hi = 0xBF
            i += 1
            need -= 1
        }
    }

    private static func isHex(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }

    private static func scanNumber(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws(Failure) {
        func digits() -> Int {
            let start = i
            while i < b.count, (0x30...0x39).contains(b[i]) { i += 1 }
            return i - start
        }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count else { throw .syntax(offset: i, expected: "a digit") }
        if b[i] == UInt8(ascii: "0") { i += 1 } else if digits() == 0 { throw .syntax(offset: i, expected: "a digit") }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw .syntax(offset: i, expected: "a digit after '.'") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw .syntax(offset: i, expected: "an exponent") }
        }
    }

    private static func literal(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ word: StaticString) throws(Failure) {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard i + w.count <= b.count, (0..<w.count).allSatisfy({ b[i + $0] == w[$0] }) else {
            throw .syntax(offset: i, expected: "\(word)")
        }
        i += w.count
    }
}
