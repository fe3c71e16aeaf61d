import MLHookCore

/// How every backend stores an event's kept headers: one JSON object of strings.
enum StoredHeaders {
    static func encode(_ headers: [String: String]) -> String { JSONText.object(headers) }

    static func decode(_ text: String) -> [String: String] {
        // The planner reads every event's headers: the one-pass parser, not JSONSerialization.
        guard case .object(let fields)? = JSONValue.parse(Array(text.utf8)) else { return [:] }
        return fields.compactMapValues(\.string)
    }
}
