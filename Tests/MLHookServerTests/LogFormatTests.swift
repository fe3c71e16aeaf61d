import Foundation
import Logging
@testable import MLHookServer
import Testing

/// The two log formats: text laid out as swift-log's StreamLogHandler lays it out, and one JSON object per line.
@Suite struct LogFormatTests {
    struct Refused: Error {}

    func event(_ message: Logger.Message, metadata: Logger.Metadata?, error: (any Error)? = nil) -> LogEvent {
        LogEvent(level: .notice, message: message, error: error, metadata: metadata, source: "MLHookServer",
                 file: #fileID, function: #function, line: #line)
    }

    @Test func textLinesKeepStreamLogHandlersLayout() {
        let line = StandardErrorLogHandler.textLine(event("hook rejected: bad", metadata: ["status": "401", "delivery_id": "d-1"]),
                                       label: "mlhook", base: ["source": "github", "status": "0"], stamp: "2026-11-22T13:22:36+0000")
        // Keys sorted; the event's metadata wins over the handler's.
        #expect(line == "2026-11-22T13:22:36+0000 notice mlhook: delivery_id=d-1 source=github status=401 [MLHookServer] hook rejected: bad\n")
        #expect(StandardErrorLogHandler.textLine(event("started", metadata: nil), label: "", base: [:], stamp: "T")
                == "T notice: [MLHookServer] started\n")
        let failed = StandardErrorLogHandler.textLine(event("failed", metadata: nil, error: Refused()), label: "mlhook", base: [:], stamp: "T")
        #expect(failed.contains("error.message=Refused() error.type=MLHookServerTests.LogFormatTests.Refused [MLHookServer] failed"))
    }

    /// A value from a request cannot forge a second log line (log injection).
    @Test func textLinesEscapeControlCharacters() {
        let forged = "d-1\n2026-11-22T13:22:36+0000 notice mlhook: [MLHookServer] admin token rotated"
        let line = StandardErrorLogHandler.textLine(event("hook stored\r\n\u{1B}[31mred", metadata: ["delivery_id": .string(forged)]),
                                                    label: "mlhook", base: [:], stamp: "T")
        #expect(line.filter { $0 == "\n" || $0 == "\r\n" }.count == 1 && line.hasSuffix("\n"), "one line: \(line)")
        #expect(line.contains(#"delivery_id=d-1\n2026-11-22T13:22:36+0000 notice"#) && line.contains(#"hook stored\r\n\u{1B}[31mred"#), "\(line)")
        #expect(StandardErrorLogHandler.oneLine("plain text, é ✓") == "plain text, é ✓")
    }

    @Test func jsonLinesAreOneObjectWithEscapedAndNestedValues() throws {
        let line = StandardErrorLogHandler.jsonLine(event("quote \" backslash \\ newline \n tab \t bell \u{7} é /path", metadata: [
            "msg": "not the message", "ids": ["a", "b"], "outer": ["inner": .stringConvertible(42)],
        ]), label: "mlhook", base: ["source": "github"], ts: "2026-11-22T13:22:36.042Z")
        #expect(line.hasSuffix("}\n") && line.dropLast().contains("\n") == false, "one line")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["msg"] as? String == "quote \" backslash \\ newline \n tab \t bell \u{7} é /path")
        #expect(object["ts"] as? String == "2026-11-22T13:22:36.042Z" && object["level"] as? String == "notice")
        #expect(object["label"] as? String == "mlhook" && object["source"] as? String == "github")
        #expect(object["ids"] as? [String] == ["a", "b"] && (object["outer"] as? [String: Any])?["inner"] as? String == "42")
        #expect(line.hasPrefix(#"{"ids":["a","b"],"label":"mlhook","level":"notice","msg":"#), "keys sorted")
    }

    @Test func timestampsNameTheSecondAndTheMillisecond() throws {
        let date = Date(timeIntervalSince1970: 1_795_346_556.042)  // 2026-11-22T11:22:36.042Z
        let (local, utc) = LogOutput.stamps(at: date)
        #expect(utc == "2026-11-22T11:22:36" && LogOutput.milliseconds(date) == ".042Z")
        #expect(local.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$"#, options: .regularExpression) != nil)
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime]
        #expect(parser.date(from: local.prefix(22) + ":" + local.suffix(2)) == Date(timeIntervalSince1970: 1_795_346_556))
        // The next second is formatted anew.
        #expect(LogOutput.stamps(at: date.addingTimeInterval(1)).utc == "2026-11-22T11:22:37")
    }
}
