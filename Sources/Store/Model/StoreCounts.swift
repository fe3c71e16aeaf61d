import Foundation
import MLHookCore

/// Rows per state.
public struct StoreCounts: Sendable, Equatable {
    public var jobs: [String: Int]
    public var callbacks: [String: Int]
    public var events: [String: Int]
    public init(jobs: [String: Int] = [:], callbacks: [String: Int] = [:], events: [String: Int] = [:]) {
        self.jobs = jobs; self.callbacks = callbacks; self.events = events
    }
}
