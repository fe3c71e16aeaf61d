/// One problem in a configuration file, located by file, line and key.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    /// The file (or `<embedded defaults>`, `<environment>`).
    public let file: String
    /// 1-based line, 0 when unknown.
    public let line: Int
    /// Dotted key path, such as `sources[0].secrets`.
    public let key: String
    /// What was wrong and what was expected.
    public let message: String

    public init(file: String, line: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        let place = line > 0 ? "\(file):\(line)" : file
        return key.isEmpty ? "\(place): \(message)" : "\(place): \(key): \(message)"
    }
}

/// A configuration that could not be loaded: every problem found, in file order.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The problems.
    public let issues: [ConfigIssue]

    public init(_ issues: [ConfigIssue]) { self.issues = issues }

    public var description: String { issues.map(\.description).joined(separator: "\n") }
}
