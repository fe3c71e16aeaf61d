import Synchronization

/// A value behind a mutex, shareable across tasks.
final class SynchronizedBox<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func read<T: Sendable>(_ body: (Value) -> T) -> T { mutex.withLock { body($0) } }
    func write(_ body: (inout Value) -> Void) { mutex.withLock { body(&$0) } }
}
