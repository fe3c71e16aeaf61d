/// Splits text into words as a POSIX shell does, without expanding anything: whitespace separates words,
/// single quotes keep everything literally, double quotes keep spaces (a backslash escapes `"`, `\\`, `$` and
/// `` ` `` inside them), and a backslash outside quotes keeps the next character.
public enum ShellWords {
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    public static func split(_ text: String) -> Result<[String], Failure> {
        var words: [String] = []
        var current = ""
        var inWord = false
        var iterator = Array(text).makeIterator()
        while let c = iterator.next() {
            switch c {
            case " ", "\t", "\n", "\r":
                if inWord { words.append(current); current = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let d = iterator.next() {
                    if d == "'" { closed = true; break }
                    current.append(d)
                }
                guard closed else { return .failure(Failure(description: "an unclosed single quote")) }
            case "\"":
                inWord = true
                var closed = false
                while let d = iterator.next() {
                    if d == "\"" { closed = true; break }
                    if d == "\\" {
                        guard let e = iterator.next() else { break }
                        if !["\"", "\\", "$", "`"].contains(e) { current.append(d) }
                        current.append(e)
                    } else {
                        current.append(d)
                    }
                }
                guard closed else { return .failure(Failure(description: "an unclosed double quote")) }
            case "\\":
                inWord = true
                if let d = iterator.next() { current.append(d) }
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { words.append(current) }
        return .success(words)
    }
}
