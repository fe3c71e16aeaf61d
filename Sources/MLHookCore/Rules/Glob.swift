/// A glob over `/`-separated names: `*` matches within one segment, `**` across segments, `?` one character.
public struct Glob: Sendable, Equatable, CustomStringConvertible {
    public let pattern: String
    private let chars: [Character]

    public init(_ pattern: String) {
        self.pattern = pattern
        self.chars = Array(pattern)
    }

    public var description: String { pattern }

    /// Whether `text` matches the whole pattern.
    public func matches(_ text: String) -> Bool {
        let t = Array(text)
        // Iterative DP over (pattern index, text index): linear memory, no recursion, no regex.
        var memo = [Int8](repeating: -1, count: (chars.count + 1) * (t.count + 1))
        func m(_ p: Int, _ s: Int) -> Bool {
            let key = p * (t.count + 1) + s
            if memo[key] >= 0 { return memo[key] == 1 }
            var result: Bool
            if p == chars.count {
                result = s == t.count
            } else if chars[p] == "*" {
                let double = p + 1 < chars.count && chars[p + 1] == "*"
                let next = double ? p + 2 : p + 1
                // `**/` also matches zero directories.
                let skipSlash = double && next < chars.count && chars[next] == "/"
                result = m(next, s) || (skipSlash && m(next + 1, s))
                var i = s
                while !result && i < t.count && (double || t[i] != "/") {
                    i += 1
                    result = m(next, i) || (skipSlash && m(next + 1, i))
                }
            } else if s < t.count && (chars[p] == "?" ? t[s] != "/" : chars[p] == t[s]) {
                result = m(p + 1, s + 1)
            } else {
                result = false
            }
            memo[key] = result ? 1 : 0
            return result
        }
        return m(0, 0)
    }
}
