import Foundation
import GRDB

/// What the SQLite backend's own tests check, without handing them the connection pool.
extension SQLiteStore {
    /// `PRAGMA synchronous` on the connection that commits (2 full, 1 normal).
    func writerSynchronousLevel() async throws -> Int? {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
    }

    /// Bodies in `event_bodies` (the layout before the body log) whose event is gone.
    func orphanedLegacyBodies() async throws -> Int {
        try await read("count orphaned bodies") { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM event_bodies WHERE seq NOT IN (SELECT seq FROM events)") ?? 0
        }
    }
}
