import Foundation
import Logging
import Synchronization

/// Log lines captured in memory, for asserting what a failure logged (and that no secret was logged).
public final class CapturedLogs: Sendable {
    /// One captured line.
    public struct Line: Sendable {
        public let level: Logger.Level
        public let message: String
        public let metadata: [String: String]

        /// The message and metadata as one searchable string.
        public var text: String { message + " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    }

    private let storage = Mutex<[Line]>([])

    public init() {}

    /// A logger writing here.
    public func logger(level: Logger.Level = .trace) -> Logger {
        var l = Logger(label: "test") { _ in Handler(sink: self) }
        l.logLevel = level
        return l
    }

    public var lines: [Line] { storage.withLock { $0 } }

    public func clear() { storage.withLock { $0.removeAll() } }

    fileprivate func append(_ line: Line) { storage.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append(Line(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}
