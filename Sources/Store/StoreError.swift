/// A store failure that names what was being done.
public struct StoreError: Error, CustomStringConvertible {
    /// What failed, such as "open /var/lib/mlhook/mlhook.db".
    public let operation: String
    /// The underlying error's text.
    public let reason: String

    public init(_ operation: String, _ underlying: any Error) {
        self.operation = operation
        self.reason = String(describing: underlying)
    }

    public init(_ operation: String, _ reason: String) {
        self.operation = operation
        self.reason = reason
    }

    public var description: String { "store: \(operation): \(reason)" }
}
