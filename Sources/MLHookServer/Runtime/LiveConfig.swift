import Foundation
import MLHookCore
import Signing
import Synchronization

/// The configuration in force, swapped whole on reload; readers always see one consistent snapshot.
public final class LiveConfig: Sendable {
    /// One consistent configuration with its resolved sources.
    public struct Snapshot: Sendable {
        public let config: MLHookConfig
        public let sources: [String: IngressSource]
        public let generation: Int
    }

    private let state: Mutex<Snapshot>
    private let admin = Mutex<WebhookSecret?>(nil)

    /// The admin API's bearer token; nil turns the admin API and the status page off.
    public var adminToken: WebhookSecret? {
        get { admin.withLock { $0 } }
        set { admin.withLock { $0 = newValue } }
    }

    public init(config: MLHookConfig, sources: [IngressSource]) {
        state = Mutex(Snapshot(config: config, sources: Self.index(sources), generation: 1))
    }

    static func index(_ sources: [IngressSource]) -> [String: IngressSource] {
        Dictionary(sources.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The current snapshot.
    public var snapshot: Snapshot { state.withLock { $0 } }

    /// Installs a new configuration.
    public func replace(config: MLHookConfig, sources: [IngressSource]) {
        state.withLock { $0 = Snapshot(config: config, sources: Self.index(sources), generation: $0.generation + 1) }
    }
}
