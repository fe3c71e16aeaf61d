import Foundation
import Logging
import MLHookCore

/// Opens the store a configuration names: the one place that knows which backends exist. `mlhook serve`, every
/// CLI command that reads the store, and the tests open stores through it.
///
/// ```swift
/// let store = try StoreFactory.open(config.store, logger: logger)
/// let planner = EventPlanner(inbox: store, live: live, logger: logger)
/// ```
public enum StoreFactory {
    /// Opens (creating and migrating if needed) the configured store.
    /// - Parameters:
    ///   - config: `store:` from the configuration.
    ///   - mustExist: Refuse to create a store that is not there yet (CLI commands reading a server's store:
    ///     a wrong `--config` must not silently read a new empty one).
    ///   - clock: The time the store stamps rows with.
    ///   - logger: For store-level messages.
    /// - Throws: `StoreError`: `.notFound` when `mustExist` and there is none, else why it cannot be opened.
    /// - Parameter databaseURL: PostgreSQL: the connection URL, resolved from `store.postgres.url` by the caller.
    /// - Parameter background: Run the store's own background work (SQLite: WAL checkpoints). The CLI does not:
    ///   it may read the store of a running server, which does that work already.
    public static func open(_ config: StoreConfig, mustExist: Bool = false, background: Bool = true, databaseURL: String? = nil,
                            clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger) async throws -> any MLHookStore {
        switch config.backend {
        case .sqlite(let sqlite):
            if mustExist && !FileManager.default.fileExists(atPath: sqlite.path) {
                throw StoreError(.notFound, "open \(sqlite.path)", "there is no store there (has mlhook serve run with this configuration?)")
            }
            return try SQLiteStore(path: sqlite.path, synchronous: sqlite.synchronous, checkpoints: background, clock: clock, logger: logger)
        case .postgres(let postgres):
            guard let databaseURL else { throw StoreError(.unavailable, "open the PostgreSQL store", "no database URL was given") }
            let url: PostgresURL
            do { url = try PostgresURL(databaseURL) } catch {
                throw StoreError(.unavailable, "open the PostgreSQL store", "store.postgres.url is not a PostgreSQL URL: \(error)")
            }
            return try await PostgresStore.open(url: url, poolSize: postgres.poolSize, connectTimeout: .seconds(postgres.connectTimeoutSeconds),
                                                ingestDeadline: .milliseconds(postgres.ingestTimeoutMilliseconds), clock: clock, logger: logger)
        }
    }
}
