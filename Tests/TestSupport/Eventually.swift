import Foundation

/// Waits until `condition` holds or `timeout` (10 s) passes, checking every 20 ms. - Returns: whether it held
/// (the last check is made at the deadline). The one waiting helper of the test targets.
public func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
