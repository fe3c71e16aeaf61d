import Foundation
import MLHookCore

/// Rows per state.
public struct StoreCounts: Sendable, Equatable {
    /// Jobs per state.
    public var jobs: [String: Int]
    /// Callbacks per state.
    public var callbacks: [String: Int]
    /// Events waiting to be planned, as `received` (parked ones are in `parked`).
    public var events: [String: Int]
    /// Records set aside as poison, by kind (`event`, `job`): each is kept with its reason for an operator.
    public var parked: [String: Int]
    public init(jobs: [String: Int] = [:], callbacks: [String: Int] = [:], events: [String: Int] = [:], parked: [String: Int] = [:]) {
        self.jobs = jobs; self.callbacks = callbacks; self.events = events; self.parked = parked
    }
}

/// A record that cannot be processed (its body unreadable, its outcome unwritable, its run unreadable for too
/// long) is parked instead of stalling the work behind it: ended with a reason that starts with this prefix,
/// shown as-is in `/ui`, the admin API and the CLI, and counted by `mlhook_parked_records`.
public enum Parked {
    public static let prefix = "parked: "
    /// The reason stored for a parked record.
    public static func reason(_ why: String) -> String { prefix + why }
}
