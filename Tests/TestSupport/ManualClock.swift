import Foundation
import Synchronization

/// A clock tests move by hand, for code that takes `now: @Sendable () -> Date`: a token expires, a retry falls
/// due or a lease runs out without the test sleeping.
public final class ManualClock: Sendable {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_900_000_000)) { current = Mutex(start) }

    /// The time now.
    public var now: Date { current.withLock { $0 } }

    /// Moves the clock on by `seconds`.
    public func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }

    /// The clock as a function, for the code under test.
    public var read: @Sendable () -> Date { { [self] in now } }
}
