import Foundation

/// A PostgreSQL connection URL, as libpq writes it: `postgres://user:password@host:5432/db?sslmode=require`, or
/// over a Unix socket `postgres://user@/db?host=/run/postgresql`. Its `description` never shows the password;
/// a URL that does not parse is refused with a reason that does not quote it either.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    /// How the connection is secured (libpq's `sslmode`, reduced to what the client can do).
    public enum TLSMode: String, Sendable, Equatable {
        /// No TLS (`sslmode=disable`).
        case disable
        /// TLS when the server offers it (`prefer`, `allow`; the default).
        case prefer
        /// TLS or no connection, with the server's certificate verified (`require`, `verify-ca`, `verify-full`).
        case require
    }

    /// The host, when connecting over TCP.
    public var host: String?
    public var port: Int
    /// The socket file (`<dir>/.s.PGSQL.<port>`), when connecting over a Unix socket.
    public var unixSocketPath: String?
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    /// Parses a URL. - Throws: `ConfigError`-ready text (without the URL itself) saying what is wrong.
    public init(_ text: String) throws(PostgresURLError) {
        guard let components = URLComponents(string: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw PostgresURLError("it is not a URL (expected postgres://user:password@host:5432/database)")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw PostgresURLError("its scheme must be postgres:// or postgresql://")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] { query[item.name] = item.value ?? "" }
        let port = components.port ?? query["port"].flatMap { Int($0) } ?? 5432
        guard (1...65535).contains(port) else { throw PostgresURLError("its port must be between 1 and 65535") }
        self.port = port
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }) ?? query["user"], !user.isEmpty else {
            throw PostgresURLError("it names no user (postgres://USER@host/database)")
        }
        self.user = user
        password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding } ?? query["password"]
        let path = String(components.percentEncodedPath.drop { $0 == "/" })
        guard let database = (path.removingPercentEncoding ?? path).nilIfEmpty ?? query["dbname"], !database.isEmpty else {
            throw PostgresURLError("it names no database (postgres://user@host/DATABASE)")
        }
        self.database = database
        let hostParameter = query["host"]
        if let dir = hostParameter, dir.hasPrefix("/") {
            unixSocketPath = (dir as NSString).appendingPathComponent(".s.PGSQL.\(port)")
            host = nil
        } else if let h = components.host?.nilIfEmpty ?? hostParameter?.nilIfEmpty {
            host = h
            unixSocketPath = nil
        } else {
            throw PostgresURLError("it names no host (postgres://user@HOST/database, or ?host=/socket/directory)")
        }
        switch query["sslmode"] ?? "prefer" {
        case "disable": tls = .disable
        case "allow", "prefer": tls = .prefer
        case "require", "verify-ca", "verify-full": tls = .require
        case let other: throw PostgresURLError("sslmode \"\(other)\" is not one of disable, allow, prefer, require, verify-ca, verify-full")
        }
    }

    /// The URL with its password replaced by `***`: what logs, errors and `config check` show.
    public var description: String {
        let auth = user + (password == nil ? "" : ":***")
        if let unixSocketPath {
            return "postgres://\(auth)@/\(database)?host=\((unixSocketPath as NSString).deletingLastPathComponent)"
        }
        return "postgres://\(auth)@\(host ?? "")\(port == 5432 ? "" : ":\(port)")/\(database)"
    }
}

/// Why a PostgreSQL URL was refused; never contains the URL (it may hold a password).
public struct PostgresURLError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate var nilIfEmpty: String? { isEmpty ? nil : self }
}
