import Foundation
import Hummingbird
import NIOCore
import Synchronization

/// Failed attempts at a secret (the admin token as a bearer token, the `/ui` sign-in), counted per client address:
/// past `limit` failures within `window` seconds, that address waits, and only that address. Before, the `/ui`
/// lockout counted every client together, so one guesser locked every operator out; the admin API counted nothing.
///
/// Memory is bounded: at most `maxClients` addresses are remembered (the oldest failure is forgotten first). Behind a
/// proxy every client shares the proxy's address; mlhook does not read `X-Forwarded-For`, which a client can write.
final class ClientThrottle: Sendable {
    private let failures = Mutex<[String: [Date]]>([:])
    let limit: Int
    let window: TimeInterval
    let maxClients: Int

    init(limit: Int = 10, window: TimeInterval = 60, maxClients: Int = 10_000) {
        self.limit = limit
        self.window = window
        self.maxClients = maxClients
    }

    /// The key of a request's client: its IP address, or "unknown" (a Unix socket, a test's router).
    static func client(_ context: some RequestContext) -> String {
        guard let address = (context as? any RemoteAddressRequestContext)?.remoteAddress else { return "unknown" }
        return address.ipAddress ?? address.pathname ?? "unknown"
    }

    func failed(_ client: String, now: Date) {
        failures.withLock { all in
            all[client, default: []].append(now)
            if all.count > maxClients {
                // Forget the client whose latest failure is oldest.
                if let stale = all.min(by: { ($0.value.last ?? .distantPast) < ($1.value.last ?? .distantPast) })?.key { all[stale] = nil }
            }
        }
    }

    /// Seconds `client` must wait before its next attempt, or nil when it may try now.
    func wait(_ client: String, now: Date) -> Int? {
        failures.withLock { all in
            guard var f = all[client] else { return nil }
            f.removeAll { now.timeIntervalSince($0) >= window }
            all[client] = f.isEmpty ? nil : f
            guard f.count >= limit, let oldest = f.first else { return nil }
            return max(1, Int((window - now.timeIntervalSince(oldest)).rounded(.up)))
        }
    }
}

/// The request context mlhook's router uses: Hummingbird's basic one, with the client's address (for
/// `ClientThrottle`).
public struct MLHookRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
