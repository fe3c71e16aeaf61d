import Foundation
import Logging
import MLHookCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Log lines on standard error, in either format:
/// - `text`, laid out as swift-log's `StreamLogHandler` lays them out:
///   `2026-11-22T13:22:36+0000 info mlhook: delivery_id=… event_id=… [MLHookServer] hook stored`;
/// - `json`, one object per line: `ts`, `level`, `label`, `msg`, then the metadata.
///
/// It replaces `StreamLogHandler`, which calls `localtime()` for every line (glibc then re-reads the time
/// zone: a stat of /etc/localtime each time) and flushes stdio: with the two info lines an event gets,
/// logging was 25-40 µs of ingest CPU per request (bench/ingest.sh at `log.level: info` vs `warning`).
public struct StandardErrorLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let format: LogFormat

    public init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let now = Date()
        let stamps = LogOutput.stamps(at: now)
        switch format {
        case .text: LogOutput.write(Self.textLine(event, label: label, base: metadata, stamp: stamps.local))
        case .json: LogOutput.write(Self.jsonLine(event, label: label, base: metadata, ts: stamps.utc + LogOutput.milliseconds(now)))
        }
    }

    /// One text line, newline included; metadata sorted by key, an event's metadata over the handler's.
    static func textLine(_ event: LogEvent, label: String, base: Logger.Metadata, stamp: String) -> String {
        var line = stamp + " " + event.level.rawValue + (label.isEmpty ? "" : " ") + label + ":"
        for (k, v) in LogOutput.fields(base, event).sorted(by: { $0.key < $1.key }) { line += " \(k)=" + oneLine("\(v)") }
        line += " [" + event.source + "] " + oneLine("\(event.message)") + "\n"
        return line
    }

    /// Text with its control characters escaped (`\n`, `\r`, `\t`, `\u{1B}` …): a value from a request (a
    /// header, a delivery id, git's stderr) cannot start a forged log line. Untouched when it has none.
    static func oneLine(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F: out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// One JSON object and a newline, keys sorted; metadata may not replace `ts`, `level`, `label` or `msg`.
    static func jsonLine(_ event: LogEvent, label: String, base: Logger.Metadata, ts: String) -> String {
        var fields = LogOutput.fields(base, event)
        fields["ts"] = .string(ts)
        fields["level"] = .string(event.level.rawValue)
        fields["label"] = .string(label)
        fields["msg"] = .string("\(event.message)")
        var line = ""
        append(.dictionary(fields), to: &line)
        line += "\n"
        return line
    }

    private static func append(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let s): JSONText.appendString(s, to: &out)
        case .stringConvertible(let s): JSONText.appendString("\(s)", to: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                append(v, to: &out)
            }
            out += "]"
        case .dictionary(let d):
            out += "{"
            for (i, (k, v)) in d.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { out += "," }
                JSONText.appendString(k, to: &out)
                out += ":"
                append(v, to: &out)
            }
            out += "}"
        }
    }
}

/// What both formats share: timestamps formatted once per second, and one `write(2)` per line.
enum LogOutput {
    private struct Second {
        var epoch = Int.min
        var local = ""
        var utc = ""
    }

    private static let second = Mutex(Second())
    private static let output = Mutex(())

    /// The second of `date` as local time with its offset (`2026-11-22T13:22:36+0000`) and in UTC without a
    /// zone (`2026-11-22T13:22:36`), formatted on the first line of each second.
    static func stamps(at date: Date) -> (local: String, utc: String) {
        let epoch = Int(date.timeIntervalSince1970.rounded(.down))
        return second.withLock { s in
            if s.epoch != epoch { s = Second(epoch: epoch, local: format(epoch, local: true), utc: format(epoch, local: false)) }
            return (s.local, s.utc)
        }
    }

    /// `.123Z`: the milliseconds of `date`, for the JSON `ts`.
    static func milliseconds(_ date: Date) -> String {
        let ms = Int((date.timeIntervalSince1970 * 1000).rounded(.down)) % 1000
        return "." + (ms < 10 ? "00" : ms < 100 ? "0" : "") + String(ms) + "Z"
    }

    private static func format(_ epoch: Int, local: Bool) -> String {
        var t = time_t(epoch)
        var parts = tm()
        if local { localtime_r(&t, &parts) } else { gmtime_r(&t, &parts) }
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, local ? "%Y-%m-%dT%H:%M:%S%z" : "%Y-%m-%dT%H:%M:%S", &parts)
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The handler's metadata, the event's over it, and an attached error as `error.message` and `error.type`
    /// (as `StreamLogHandler` adds them).
    static func fields(_ base: Logger.Metadata, _ event: LogEvent) -> Logger.Metadata {
        var fields = base
        if let explicit = event.metadata, !explicit.isEmpty {
            fields = base.isEmpty ? explicit : base.merging(explicit, uniquingKeysWith: { $1 })
        }
        if let error = event.error {
            fields["error.message"] = "\(error)"
            fields["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        return fields
    }

    /// Writes the whole line with `write(2)` (no stdio buffer to lose or flush), under a lock so lines from
    /// different threads never interleave.
    static func write(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return }
            output.withLock { _ in
                var offset = 0
                while offset < bytes.count {
                    let n = Glibc.write(2, base + offset, bytes.count - offset)
                    if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
                }
            }
        }
    }
}
