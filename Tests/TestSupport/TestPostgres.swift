import Foundation

/// The PostgreSQL cluster the test script starts (scripts/postgres.sh, run by scripts/test.sh and `.ci/run`):
/// its URL is `MLHOOK_TEST_DATABASE_URL`. Each test makes a database of its own and drops it at the end.
///
/// Without the variable the PostgreSQL tests fail, saying how to start the cluster: they are never skipped.
public enum TestPostgres {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// The cluster's URL (its `postgres` database). - Throws: `Failure` when no cluster was started.
    public static func baseURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["MLHOOK_TEST_DATABASE_URL"], !url.isEmpty else {
            throw Failure(description: "MLHOOK_TEST_DATABASE_URL is not set: the PostgreSQL tests need the cluster scripts/test.sh starts "
                          + "(or run `eval \"$(scripts/postgres.sh start)\"` first, and `scripts/postgres.sh stop` after)")
        }
        return url
    }

    /// A new empty database.
    public struct Database: Sendable {
        public let name: String
        public let url: String
        let base: String

        /// Drops it, ending any connection still open to it (in the background: `defer` cannot wait).
        public func drop() {
            let (base, name) = (base, name)
            Task { _ = try? await TestPostgres.psql(base, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        }
    }

    public static func createDatabase() async throws -> Database {
        let base = try baseURL()
        let name = "mlhook_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await psql(base, "CREATE DATABASE \(name)")
        return Database(name: name, url: url(base, database: name), base: base)
    }

    /// `base` with its database replaced.
    public static func url(_ base: String, database: String) -> String {
        var c = URLComponents(string: base)!
        c.path = "/" + database
        return c.string!
    }

    /// Runs one SQL command with psql. - Returns: its output (unaligned, tuples only).
    @discardableResult
    public static func psql(_ url: String, _ sql: String) async throws -> String {
        let r = try await runProcessAsync("/usr/bin/env", ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql])
        guard r.status == 0 else { throw Failure(description: "psql failed (\(sql)): \(r.output)") }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
