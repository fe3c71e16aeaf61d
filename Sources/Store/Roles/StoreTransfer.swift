import Foundation

/// Moving a whole store to another backend (`mlhook store migrate`): rows read oldest first in pages, and written
/// into an empty store with their ids, states and dedup keys.
public protocol StoreTransfer: Sendable {
    /// Whether the store holds no event, job, attempt or callback (a migration writes only into an empty one).
    func isEmptyForTransfer() async throws -> Bool
    /// Up to `limit` rows of `table`, oldest first, after the row `after` returned last (nil: from the start).
    /// - Returns: The rows and the cursor to pass next (nil when there are no more).
    func exportRows(_ table: TransferTable, after: TransferCursor?, limit: Int) async throws -> (rows: [TransferRow], next: TransferCursor?)
    /// Writes rows exported from another store, in one transaction, keeping their order.
    func importRows(_ table: TransferTable, _ rows: [TransferRow]) async throws
}

/// Where an export stopped (a backend's own position; opaque to callers).
public struct TransferCursor: Sendable, Equatable {
    let position: Int
    let key: [String]
}
