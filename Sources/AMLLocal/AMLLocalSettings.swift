import Foundation
import Synchronization

/// How the local server runs.
public struct AMLLocalSettings: Sendable {
    /// Where state, uploaded projects, run directories and logs live.
    public var dataDirectory: String
    /// The interpreter that runs scripts.
    public var interpreter = "python3"
    /// How runs and scoring scripts are confined (`RunSandbox`).
    public var confinement = RunConfinement.required
    /// What the kernel allows each run and scoring process (processes, memory, file sizes, `/tmp`, the run folder).
    public var limits = RunLimits()
    /// The network a confined run gets: `isolated` (its own loopback only) or `host`.
    public var network = RunNetwork.isolated
    /// The longest a run may take when its definition sets no `maxRunDurationSeconds` (6 hours).
    public var defaultMaxRunSeconds = 6 * 3600
    /// Largest request body (uploads) accepted.
    public var maxUploadBytes = 256 << 20
    /// Largest total a project zip may unpack to.
    public var maxUnpackedBytes = 1 << 30
    /// How long Creating/Updating lasts for workspaces and computes, in seconds.
    public var provisioningDelay: TimeInterval = 0.2
    /// How long issued bearer tokens stay valid, in seconds (AAD issues about an hour).
    public var tokenLifetime: TimeInterval = 3600
    /// The clock tokens are issued and checked by (injected so tests can expire a token without waiting).
    public var now: @Sendable () -> Date = { Date() }
    /// The tenant id the seeded service principal belongs to.
    public var tenant = "00000000-0000-0000-0000-00000000aaaa"
    /// The URL clients reach the server at (set once the port is bound).
    let base = BaseURL()
    /// The HTTPS URL, when the server also listens with TLS (set once that port is bound).
    let httpsBase = BaseURL("")

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }

    /// The base URL every host kind is served at.
    public var baseURL: String { base.value.withLock { $0 } }

    /// The HTTPS base URL, or nil when the server has no TLS listener.
    public var httpsBaseURL: String? { httpsBase.value.withLock { $0.isEmpty ? nil : $0 } }

    /// The base URL a request came in on: links in answers (operations, logs, blobs, scoring) keep its scheme,
    /// since a client that sent a token over HTTPS will not send it to plain HTTP.
    func base(forAuthority authority: String?) -> String {
        if let https = httpsBaseURL, let authority, let port = authority.split(separator: ":").last,
           https.hasSuffix(":" + port) { return https }
        return baseURL
    }
}

/// The bound base URL, shared by copies of the settings.
final class BaseURL: Sendable {
    let value: Mutex<String>
    init(_ initial: String = "http://127.0.0.1") { value = Mutex(initial) }
}
