import Foundation
import Signing

/// The whole configuration, typed and validated once at start.
///
/// `config/mlhook.yaml` documents every key with its default. Loading is pure (text in, value out); resolving
/// secret references (environment, files) happens in the server when it starts.
public struct MLHookConfig: Sendable, Equatable {
    /// HTTP listener settings.
    public var server = ServerConfig()
    /// Durable store settings.
    public var store = StoreConfig()
    /// Logging settings.
    public var log = LogConfig()
    /// Webhook senders, by name; each is served at `POST /hooks/{name}`.
    public var sources: [SourceConfig] = []
    /// What to do for which events.
    public var rules: [Rule] = []
    /// Cron schedule settings.
    public var scheduler = SchedulerConfig()
    /// Which Azure ML mlhook talks to.
    public var azureml = AzureMLConfig()
    /// Job workers and their retries.
    public var jobs = JobsConfig()
    /// Callback delivery.
    public var callbacks = CallbacksConfig()
    /// Operator access: the admin API and the status page.
    public var admin = AdminConfig()

    public init() {}

    /// The source served at `/hooks/{name}`.
    public func source(named name: String) -> SourceConfig? { sources.first { $0.name == name } }

    /// Where `start_run` keeps its git cache: `jobs.git_cache_dir`, or `git-cache` beside the store.
    public var gitCacheDirectory: String {
        jobs.gitCacheDirectory ?? (store.defaultStateDirectory as NSString).appendingPathComponent("git-cache")
    }
}

/// `server:` settings.
public struct ServerConfig: Sendable, Equatable {
    /// Host to bind.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks a free port.
    public var port = 8080
    /// Largest body accepted, in bytes (GitHub caps payloads at 25 MB).
    public var maxBodyBytes = 25 * 1024 * 1024
    /// On SIGTERM, in-flight requests and running actions get this long to finish; then they are cancelled
    /// (an interrupted job returns to the queue for the next start).
    public var shutdownGraceSeconds = 30
    /// A connection with nothing read or written for this long is closed (slow or abandoned clients).
    public var idleTimeoutSeconds = 30
    /// A whole request, headers and body, must arrive within this long of the connection being ready for it;
    /// otherwise the connection is closed (a sender trickling bytes cannot hold it and its body budget).
    public var readTimeoutSeconds = 60
    /// The most connections open at once; past it, new connections wait in the listen backlog until one closes.
    public var maxConnections = 512
    /// The most body bytes held in memory at once over all requests still unauthenticated; a request that would
    /// pass it gets 503 with Retry-After instead of being read (many slow uploads cannot exhaust memory).
    public var maxInflightBodyBytes = 128 * 1024 * 1024
    /// The most of that one client address may hold (default: a quarter of it, at least `max_body_bytes`), so one
    /// client's slow uploads leave the rest to the others.
    public var maxInflightBodyBytesPerClient: Int?
    /// The slowest a body may arrive, in bytes per second, once `bodyRateGraceSeconds` have passed (a trickling
    /// sender is cut off with 408 instead of holding its connection for the whole read timeout).
    public var minBodyBytesPerSecond = 16 * 1024
    public var bodyRateGraceSeconds = 5
    /// Connections one client address may hold open at once; more are closed as they are accepted.
    public var maxConnectionsPerClient = 64
    /// A request's head (request line and headers) must arrive within this long of the connection being ready.
    public var headerTimeoutSeconds = 10

    /// What one client may hold of the body budget.
    public var inflightShare: Int { maxInflightBodyBytesPerClient ?? max(maxBodyBytes, maxInflightBodyBytes / 4) }
    /// Serve HTTPS with these PEM files instead of HTTP.
    public var tls: TLSConfig?
    public init() {}
}

/// How much the store's commit promises.
public enum SynchronousMode: String, Sendable, Equatable, CaseIterable {
    /// fsync the WAL at every commit: a 2xx survives power loss and OS crashes.
    case full
    /// fsync only at checkpoints: a 2xx survives a process crash (kill -9), not power loss.
    case normal
}

/// A line of the configuration file that a value came from, for messages. Not part of what the configuration
/// means: two configurations that differ only in where their values stand are equal (a reload that moves a line
/// changes nothing).
public struct SourceLine: Sendable, Equatable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public var value: Int
    public init(_ value: Int) { self.value = value }
    public init(integerLiteral value: Int) { self.value = value }
    public static func == (_: SourceLine, _: SourceLine) -> Bool { true }
    public var description: String { String(value) }
}

/// The lines a list of values came from (as `SourceLine`, never part of equality).
public struct SourceLines: Sendable, Equatable {
    public var values: [Int] = []
    public init() {}
    public static func == (_: SourceLines, _: SourceLines) -> Bool { true }
}

/// `server.tls:` PEM certificate chain and private key.
public struct TLSConfig: Sendable, Equatable {
    public var certificateFile: String
    public var keyFile: String
    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// `jobs:` settings.
public struct JobsConfig: Sendable, Equatable {
    /// Jobs performed at once, over all rules.
    public var workers = 4
    /// A failed attempt is retried after a random delay of at most base·2^(attempt-1) seconds, capped.
    public var retryBaseSeconds = 2
    public var retryMaxSeconds = 600
    /// A claimed job returns to the queue when its worker has not finished it within this many seconds.
    public var leaseSeconds = 300
    /// Where `start_run` keeps its bare git repositories (nil: `git-cache` beside the store).
    public var gitCacheDirectory: String?
    public init() {}
}

/// `callbacks:` settings.
public struct CallbacksConfig: Sendable, Equatable {
    /// Delay before each retry of a failed delivery; after the last one the callback is dead.
    public var retrySchedule: [Int] = [5, 30, 120, 600, 1800, 7200]
    public init() {}
}

/// `admin:` settings. With no token, the admin API and the status page are off.
public struct AdminConfig: Sendable, Equatable {
    public var token: SecretReference?
    /// Where `token` stands in the file (0: unknown).
    public var tokenLine: SourceLine = 0
    /// `/metrics` answers only with `Authorization: Bearer <admin token>` (`admin.protect_metrics`).
    public var protectMetrics = false
    public init() {}
}

/// `scheduler:` settings.
public struct SchedulerConfig: Sendable, Equatable {
    /// A tick missed while mlhook was down fires once at start if it is at most this old (seconds).
    public var catchUpSeconds = 3600
    public init() {}
}

/// `store:` settings: which backend keeps the inbox, jobs and callbacks, and for how long.
public struct StoreConfig: Sendable, Equatable, CustomStringConvertible {
    /// The embedded SQLite store: `store.path` and `store.synchronous`.
    public struct SQLite: Sendable, Equatable {
        /// SQLite file path (relative paths are relative to the working directory); bodies go to `<path>.bodies/`.
        public var path = ".mlhook/mlhook.db"
        /// Commit durability.
        public var synchronous = SynchronousMode.full
        public init(path: String = ".mlhook/mlhook.db", synchronous: SynchronousMode = .full) {
            self.path = path
            self.synchronous = synchronous
        }
    }

    /// The shared PostgreSQL store: `store.postgres`, for several replicas of `mlhook serve`.
    public struct Postgres: Sendable, Equatable {
        /// The connection URL (it holds the password: a reference, never printed); `MLHOOK_DATABASE_URL` overrides it.
        public var url: SecretReference
        /// Connections per replica.
        public var poolSize = 10
        /// How long opening a connection may take before the store counts as unreachable.
        public var connectTimeoutSeconds = 5
        /// How long ingest waits for its commit before answering 503 (the sender retries; the retry is deduplicated).
        public var ingestTimeoutMilliseconds = 1000
        public init(url: SecretReference, poolSize: Int = 10, connectTimeoutSeconds: Int = 5, ingestTimeoutMilliseconds: Int = 1000) {
            self.url = url
            self.poolSize = poolSize
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.ingestTimeoutMilliseconds = ingestTimeoutMilliseconds
        }
    }

    /// Where the store lives. Only `Store.StoreFactory` opens it; nothing else looks inside.
    public enum Backend: Sendable, Equatable {
        /// One SQLite file with a body log beside it (the embedded default).
        case sqlite(SQLite)
        /// A PostgreSQL database shared by every replica.
        case postgres(Postgres)
    }

    public var backend = Backend.sqlite(SQLite())
    /// How long events (and so their dedup keys) are kept, in days; at least 7.
    public var retentionDays = 30
    public init() {}

    /// Where the store is, for log lines: `sqlite .mlhook/mlhook.db`.
    public var description: String {
        switch backend {
        case .sqlite(let s): "sqlite \(s.path)"
        case .postgres(let p): "postgres (url from \(p.url))"
        }
    }

    /// The folder local state that belongs with the store defaults to (the git cache): the SQLite file's folder.
    public var defaultStateDirectory: String {
        switch backend {
        case .sqlite(let s):
            let dir = (s.path as NSString).deletingLastPathComponent
            return dir.isEmpty ? "." : dir
        case .postgres:
            return ".mlhook"
        }
    }
}

/// Log output format.
public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    case text
    case json
}

/// Log verbosity.
public enum LogLevel: String, Sendable, Equatable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// `log:` settings.
public struct LogConfig: Sendable, Equatable {
    public var level = LogLevel.info
    public var format = LogFormat.text
    public init() {}
}

/// The signing scheme a source uses.
public enum SourceType: String, Sendable, Equatable, CaseIterable {
    case github, gitea, gitlab, bitbucket, slack, standard, generic
}

/// Where a secret comes from. Secrets are references so they never live in the config text.
public enum SecretReference: Sendable, Equatable, CustomStringConvertible {
    /// An environment variable.
    case env(String)
    /// A file's content (trailing newline trimmed). With `create`, a random secret is written (mode 0600)
    /// when the file does not exist: the embedded defaults use this so the first start needs no setup.
    case file(String, create: Bool)
    /// A literal in the config file: accepted with a warning.
    case literal(String)

    public var description: String {
        switch self {
        case .env(let name): "env \(name)"
        case .file(let path, _): "file \(path)"
        case .literal: "literal value"
        }
    }
}

/// One webhook sender.
public struct SourceConfig: Sendable, Equatable {
    /// The path segment: `/hooks/{name}`.
    public var name: String
    /// The signing scheme.
    public var type: SourceType
    /// Active secrets; the first signs (for `mlhook send`), any verifies (rotation).
    public var secrets: [SecretReference] = []
    /// Where each secret stands in the file (0: unknown), for errors about resolving it.
    public var secretLines = SourceLines()
    /// Accept unsigned requests. Logged as a warning at every start.
    public var insecure = false
    /// GitHub only: also accept the legacy SHA-1 `X-Hub-Signature`.
    public var allowSHA1 = false
    /// Replay window for timestamped schemes (Slack, Standard Webhooks, generic), in seconds.
    public var toleranceSeconds = 300
    /// The generic scheme's settings (type `generic` only).
    public var generic: GenericSourceConfig?
    /// The git transports a repository named by this source's events may use (`git_schemes`). `file` (a path on
    /// mlhook's own machine, such as another project's cached repository) only when listed.
    public var gitSchemes: [String] = SourceConfig.defaultGitSchemes
    /// The forge this source's events come from (`forge_url`): a git token is sent only to this origin when an
    /// event names the repository. GitHub sources default to `https://github.com`; other sources without one fetch
    /// the repositories their events name without the token.
    public var forgeURL: String?
    /// The origin a token may go to for repositories this source's events name.
    public var tokenOrigin: String? { forgeURL ?? (type == .github ? "https://github.com" : nil) }
    public static let defaultGitSchemes = ["https", "ssh", "git", "http"]
    public static let knownGitSchemes = ["https", "http", "ssh", "git", "file"]

    public init(name: String, type: SourceType) {
        self.name = name
        self.type = type
    }
}

/// `generic:` settings of a source of type generic.
public struct GenericSourceConfig: Sendable, Equatable {
    public var header: String
    public var algorithm: HMACAlgorithm = .sha256
    public var encoding: GenericHMACScheme.Encoding = .hex
    public var prefix = ""
    public var timestampHeader: String?
    public var signedString: String?
    /// Header with a unique delivery id, for deduplication (else a hash of the body is used).
    public var deliveryHeader: String?
    /// Header naming the event type.
    public var eventHeader: String?

    public init(header: String) { self.header = header }
}
