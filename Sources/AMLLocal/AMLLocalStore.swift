import Foundation
import GRDB
import MLHookCore

/// The local server's state: every resource (workspace, compute, experiment, run, model) as a JSON document
/// under (kind, scope, name), in one SQLite file in the data directory.
final class AMLLocalStore: Sendable {
    private let pool: DatabasePool

    /// Opens `DIR/aml-local.db`.
    init(dataDirectory: String) throws {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        var config = GRDB.Configuration()
        config.busyMode = .timeout(5)
        pool = try DatabasePool(path: dataDirectory + "/aml-local.db", configuration: config)
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE resources (
                    kind TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL COLLATE NOCASE,
                    body TEXT NOT NULL, seq INTEGER NOT NULL,
                    PRIMARY KEY (kind, scope, name)
                );
                CREATE TABLE counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                """)
        }
        try m.migrate(pool)
    }

    func get(_ kind: String, _ scope: String, _ name: String) throws -> JSONValue? {
        try pool.read { db in
            try String.fetchOne(db, sql: "SELECT body FROM resources WHERE kind = ? AND scope = ? AND name = ?",
                                arguments: [kind, scope, name]).flatMap { JSONValue(json: Array($0.utf8)) }
        }
    }

    func put(_ kind: String, _ scope: String, _ name: String, _ body: JSONValue) throws {
        try pool.write { db in
            let seq = try Int.fetchOne(db, sql: "SELECT coalesce(max(seq), 0) + 1 FROM resources") ?? 1
            try db.execute(sql: """
                INSERT INTO resources (kind, scope, name, body, seq) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(kind, scope, name) DO UPDATE SET body = excluded.body
                """, arguments: [kind, scope, name, body.text, seq])
        }
    }

    /// Resources of a kind in a scope, oldest first.
    func list(_ kind: String, _ scope: String) throws -> [JSONValue] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT body FROM resources WHERE kind = ? AND scope = ? ORDER BY seq", arguments: [kind, scope])
                .compactMap { JSONValue(json: Array($0.utf8)) }
        }
    }

    /// Resources of a kind in a scope with their names, oldest first.
    func names(_ kind: String, _ scope: String) throws -> [(String, JSONValue)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, body FROM resources WHERE kind = ? AND scope = ? ORDER BY seq", arguments: [kind, scope])
                .compactMap { row in
                    let body: String = row["body"]
                    return JSONValue(json: Array(body.utf8)).map { (row["name"], $0) }
                }
        }
    }

    /// Every resource of a kind, in every scope.
    func all(_ kind: String) throws -> [(scope: String, body: JSONValue)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT scope, body FROM resources WHERE kind = ? ORDER BY seq", arguments: [kind]).compactMap { row in
                let body: String = row["body"]
                return JSONValue(json: Array(body.utf8)).map { (row["scope"], $0) }
            }
        }
    }

    @discardableResult
    func delete(_ kind: String, _ scope: String, _ name: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM resources WHERE kind = ? AND scope = ? AND name = ?", arguments: [kind, scope, name])
            return db.changesCount > 0
        }
    }

    /// Deletes a resource and everything scoped under it (a workspace's computes, experiments, runs, models).
    func deleteTree(scope: String) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM resources WHERE scope = ? OR scope LIKE ?", arguments: [scope, scope + "/%"])
        }
    }

    /// The next value of a named counter (model versions per name, run numbers).
    func next(_ key: String) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO counters (key, value) VALUES (?, 1) ON CONFLICT(key) DO UPDATE SET value = value + 1",
                           arguments: [key])
            return try Int.fetchOne(db, sql: "SELECT value FROM counters WHERE key = ?", arguments: [key]) ?? 1
        }
    }
}
