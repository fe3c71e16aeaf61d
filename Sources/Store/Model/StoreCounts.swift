import Foundation
import MLHookCore

/// Rows per state.
public struct StoreCounts: Sendable, Equatable {
    /// Jobs per state.
    public var jobs: [String: Int]
    /// Callbacks per state.
    public var callbacks: [String: Int]
    /// Events waiting to be planned, as `received`.
    public var events: [String: Int]
    public init(jobs: [String: Int] = [:], callbacks: [String: Int] = [:], events: [String: Int] = [:]) {
        self.jobs = jobs; self.callbacks = callbacks; self.events = events
    }
}
