import Foundation

/// Where a token may be sent: an https URL, or plain http to this machine (tests, a local proxy). One rule for
/// git credentials, `github_status`'s `api_base` and the GitHub API a `pull_request` is read from.
public enum TokenDestination {
    public static let loopbackHosts: Set<String> = ["127.0.0.1", "localhost", "::1", "[::1]"]

    /// Whether a token may go to `url` (URL schemes are case-insensitive).
    public static func allows(_ url: String) -> Bool {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased(), let host = c.host, !host.isEmpty else { return false }
        return scheme == "https" || (scheme == "http" && loopbackHosts.contains(host))
    }

    /// Whether `url` is on the same origin as `base` (scheme, host and port, default ports filled in): the one test
    /// for whether a token configured for `base` may go to a URL that an event named.
    public static func sameOrigin(_ url: String, as base: String) -> Bool {
        guard let a = origin(url), let b = origin(base) else { return false }
        return a == b
    }

    static func origin(_ url: String) -> String? {
        guard let c = URLComponents(string: url), let scheme = c.scheme?.lowercased(), let host = c.host?.lowercased(), !host.isEmpty else { return nil }
        let port = c.port ?? (scheme == "https" ? 443 : scheme == "http" ? 80 : -1)
        return "\(scheme)://\(host):\(port)"
    }
}
