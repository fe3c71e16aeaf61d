/// A chat command pattern such as `/aml scale {compute} {nodes:int}` or `/aml run {experiment} {args:rest}`.
public struct CommandPattern: Sendable, Equatable, CustomStringConvertible {
    /// One token of the pattern.
    public enum Token: Sendable, Equatable {
        case literal(String)
        case parameter(name: String, type: ParameterType)
    }

    /// What a parameter accepts.
    public enum ParameterType: String, Sendable, Equatable, CaseIterable {
        /// One word.
        case str
        /// One integer.
        case int
        /// The rest of the line (last token only; may be empty).
        case rest
    }

    public let text: String
    public let tokens: [Token]

    /// Parses a pattern.
    /// - Throws: `PatternError` for an unknown type, an empty name, or `rest` before the end.
    public init(_ text: String) throws(PatternError) {
        self.text = text
        var tokens: [Token] = []
        let words = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard let first = words.first, first.hasPrefix("/") else {
            throw PatternError("a command pattern starts with the command, such as /aml")
        }
        for (i, word) in words.enumerated() {
            if word.hasPrefix("{") && word.hasSuffix("}") {
                let inner = word.dropFirst().dropLast()
                let parts = inner.split(separator: ":", maxSplits: 1).map(String.init)
                guard let name = parts.first, !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw PatternError("parameter \(word) needs a name of letters, digits and _")
                }
                guard let type = ParameterType(rawValue: parts.count > 1 ? parts[1] : "str") else {
                    throw PatternError("parameter \(word) has an unknown type; use str, int or rest")
                }
                if type == .rest && i != words.count - 1 { throw PatternError("{\(name):rest} must be the last token") }
                tokens.append(.parameter(name: name, type: type))
            } else {
                tokens.append(.literal(word))
            }
        }
        self.tokens = tokens
    }

    public var description: String { text }

    /// `line` after its first `count` whitespace-separated words, without surrounding whitespace.
    static func remainder(of line: String, after count: Int) -> String {
        var rest = Substring(line)
        for _ in 0..<count {
            rest = rest.drop(while: \.isWhitespace)
            rest = rest.drop(while: { !$0.isWhitespace })
        }
        return rest.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The `{name:rest}` parameter, if the pattern ends with one.
    public var restParameter: String? {
        tokens.compactMap { if case .parameter(let n, .rest) = $0 { n } else { nil } }.first
    }

    /// The parameter names, in order.
    public var parameterNames: [String] {
        tokens.compactMap { if case .parameter(let n, _) = $0 { n } else { nil } }
    }

    /// Matches a command line (`/aml scale gpu 4`).
    /// - Returns: The arguments by name, or a reason the line does not match.
    public func match(_ line: String) -> Result<[String: String], PatternError> {
        let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
        var args: [String: String] = [:]
        var i = 0
        for token in tokens {
            switch token {
            case .literal(let lit):
                guard i < words.count else { return .failure(PatternError("expected \"\(lit)\" after \"\(words.joined(separator: " "))\"")) }
                guard words[i] == lit else { return .failure(PatternError("expected \"\(lit)\", got \"\(words[i])\"")) }
                i += 1
            case .parameter(let name, .rest):
                // The line as typed after the words before it (quotes and spacing kept, for shell splitting).
                args[name] = Self.remainder(of: line, after: i)
                i = words.count
            case .parameter(let name, let type):
                guard i < words.count else { return .failure(PatternError("missing {\(name)}")) }
                if type == .int && Int(words[i]) == nil {
                    return .failure(PatternError("{\(name)} must be an integer, got \"\(words[i])\""))
                }
                args[name] = words[i]
                i += 1
            }
        }
        guard i == words.count else {
            return .failure(PatternError("unexpected \"\(words[i...].joined(separator: " "))\" after the pattern"))
        }
        return .success(args)
    }
}

/// A pattern that cannot be parsed, or a line that does not match.
public struct PatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
