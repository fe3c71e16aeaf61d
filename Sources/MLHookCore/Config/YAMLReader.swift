import Yams

/// Walks a composed YAML tree and records every problem with its line and key path.
///
/// Readers never throw on a bad value: they record an issue and return nil or a default, so one pass reports
/// all errors at once. Mappings report keys nobody read as unknown, because a typo must not silently disable
/// a setting.
final class YAMLReader {
    let file: String
    var issues: [ConfigIssue] = []
    private(set) var warnings: [ConfigIssue] = []

    init(file: String) { self.file = file }

    func error(_ node: Node?, _ key: String, _ message: String) {
        issues.append(ConfigIssue(file: file, line: node?.mark?.line ?? 0, key: key, message: message))
    }

    func warn(_ node: Node?, _ key: String, _ message: String) {
        warnings.append(ConfigIssue(file: file, line: node?.mark?.line ?? 0, key: key, message: message))
    }

    /// A mapping at `path`, or nil (with an issue) when the node is another kind.
    func mapping(_ node: Node, _ path: String) -> MappingReader? {
        guard case .mapping(let m) = node else {
            error(node, path, "expected a mapping (key: value)")
            return nil
        }
        return MappingReader(reader: self, node: node, mapping: m, path: path)
    }

    /// The items of a sequence, or nil (with an issue).
    func sequence(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let s) = node else {
            error(node, path, "expected a list")
            return nil
        }
        return Array(s)
    }

    func string(_ node: Node, _ path: String) -> String? {
        guard case .scalar(let s) = node else {
            error(node, path, "expected a string")
            return nil
        }
        return s.string
    }
}

/// Reads the keys of one mapping and remembers which ones were read.
final class MappingReader {
    let reader: YAMLReader
    let node: Node
    let path: String
    private var entries: [(key: String, keyNode: Node, value: Node)] = []
    private var read: Set<String> = []

    init(reader: YAMLReader, node: Node, mapping: Node.Mapping, path: String) {
        self.reader = reader
        self.node = node
        self.path = path
        for (k, v) in mapping {
            guard case .scalar(let s) = k else {
                reader.error(k, path, "keys must be plain strings")
                continue
            }
            if entries.contains(where: { $0.key == s.string }) {
                reader.error(k, keyPath(s.string), "duplicate key")
            }
            entries.append((s.string, k, v))
        }
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Whether the key is present.
    func has(_ key: String) -> Bool { entries.contains { $0.key == key } }

    /// Every key, in the file's order.
    var keys: [String] { entries.map(\.key) }

    /// The raw node of a key, marking it read.
    func node(_ key: String) -> Node? {
        read.insert(key)
        return entries.first { $0.key == key }?.value
    }

    func string(_ key: String) -> String? {
        guard let n = node(key) else { return nil }
        if n.null != nil { return nil }
        return reader.string(n, keyPath(key))
    }

    func requiredString(_ key: String) -> String? {
        guard has(key) else {
            reader.error(node, keyPath(key), "is required")
            return nil
        }
        guard let s = string(key), !s.isEmpty else {
            reader.error(node(key), keyPath(key), "must not be empty")
            return nil
        }
        return s
    }

    func int(_ key: String, default def: Int, range: ClosedRange<Int>) -> Int {
        guard let n = node(key) else { return def }
        guard let v = n.int else {
            reader.error(n, keyPath(key), "expected an integer, got \"\(n.string ?? "?")\"")
            return def
        }
        guard range.contains(v) else {
            reader.error(n, keyPath(key), "must be between \(range.lowerBound) and \(range.upperBound), got \(v)")
            return def
        }
        return v
    }

    func bool(_ key: String, default def: Bool) -> Bool {
        guard let n = node(key) else { return def }
        guard let v = n.bool else {
            reader.error(n, keyPath(key), "expected true or false, got \"\(n.string ?? "?")\"")
            return def
        }
        return v
    }

    /// A string that must be one of `choices`.
    func choice<T: RawRepresentable>(_ key: String, default def: T) -> T where T.RawValue == String, T: CaseIterable {
        guard let n = node(key), let s = reader.string(n, keyPath(key)) else { return def }
        guard let v = T(rawValue: s) else {
            let all = T.allCases.map { $0.rawValue }.joined(separator: ", ")
            reader.error(n, keyPath(key), "must be one of \(all), got \"\(s)\"")
            return def
        }
        return v
    }

    /// Records every key that was not read as unknown. Call last.
    func finish() {
        for e in entries where !read.contains(e.key) {
            reader.error(e.keyNode, keyPath(e.key), "unknown key")
        }
    }
}
