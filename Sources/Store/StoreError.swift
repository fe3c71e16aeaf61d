import Foundation

/// A store failure: what was being done, why, and a code that tells "retry later" from "bad record".
///
/// Codes grow without breaking callers (swift-service-lifecycle's pattern): switch on `code` with a default,
/// or ask `isRetryable`.
///
/// ```swift
/// do { _ = try await inbox.append(event) }
/// catch let error as StoreError where error.isRetryable { return .serviceUnavailable }
/// ```
public struct StoreError: Error, CustomStringConvertible, Sendable {
    /// Why a store operation failed.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case busy, unavailable, storageFull, io, corrupt, badRecord, schema, notFound, leaseLost, other
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// Another writer holds the lock longer than the store waits (SQLite BUSY or LOCKED).
        public static let busy = Code(.busy)
        /// The store cannot be reached or opened now (a connection lost, a file that cannot be opened).
        public static let unavailable = Code(.unavailable)
        /// The disk or the database is full.
        public static let storageFull = Code(.storageFull)
        /// Reading or writing failed at the operating system (EIO, a body that cannot be written).
        public static let io = Code(.io)
        /// Stored bytes are damaged (a checksum or the database file itself).
        public static let corrupt = Code(.corrupt)
        /// The record breaks a constraint or cannot be encoded: retrying the same record fails the same way.
        public static let badRecord = Code(.badRecord)
        /// The schema is not one this version knows (a newer mlhook wrote it), or migrating it failed.
        public static let schema = Code(.schema)
        /// The store does not exist (a CLI command pointed at the wrong configuration).
        public static let notFound = Code(.notFound)
        /// A worker's lease on a job ran out and the job was released or claimed again: what that worker would
        /// write is refused (fencing), since another worker owns the job now.
        public static let leaseLost = Code(.leaseLost)
        /// Anything else.
        public static let other = Code(.other)

        public var description: String { value.rawValue }
    }

    /// Why it failed.
    public let code: Code
    /// What failed, such as "open /var/lib/mlhook/mlhook.db".
    public let operation: String
    /// The underlying error's text.
    public let reason: String

    /// A failure with a known code.
    public init(_ code: Code, _ operation: String, _ reason: String) {
        self.code = code
        self.operation = operation
        self.reason = reason
    }

    /// A failure caused by `underlying`; its code is kept when it is a `StoreError`, else `classify` decides.
    public init(_ operation: String, _ underlying: any Error, classify: (any Error) -> Code = { _ in .other }) {
        if let inner = underlying as? StoreError {
            self.code = inner.code
            self.reason = inner.operation + ": " + inner.reason
        } else {
            self.code = classify(underlying)
            self.reason = String(describing: underlying)
        }
        self.operation = operation
    }

    /// A failure with a reason and no known code.
    public init(_ operation: String, _ reason: String) {
        self.init(.other, operation, reason)
    }

    /// Whether the same operation may succeed later unchanged: busy, unavailable, full or an I/O error.
    public var isRetryable: Bool {
        [.busy, .unavailable, .storageFull, .io].contains(code)
    }

    public var description: String { "store: \(operation): \(reason)" }
}
