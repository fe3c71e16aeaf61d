import Foundation

/// A 5-field cron schedule (minute hour day-of-month month day-of-week) in a time zone, or one of
/// `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`.
///
/// Daylight-saving transitions: a local time that does not exist (the skipped hour) fires once at the end of
/// the gap; a local time that happens twice (the repeated hour) fires once, at its first occurrence.
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let expression: String
    public let timeZone: TimeZone
    let minutes: [Int]
    let hours: [Int]
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    public var description: String { "\(expression) (\(timeZone.identifier))" }

    /// Parses an expression.
    /// - Throws: `CronError` naming the field and what it accepts.
    public init(_ expression: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!) throws(CronError) {
        self.expression = expression
        self.timeZone = timeZone
        let macros = ["@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                      "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"]
        let text = macros[expression.trimmingCharacters(in: .whitespaces).lowercased()] ?? expression
        let fields = text.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 5 else {
            throw CronError("\"\(expression)\" needs 5 fields (minute hour day-of-month month day-of-week) or @hourly/@daily/@weekly")
        }
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        minutes = try Self.field(fields[0], "minute", 0...59).sorted()
        hours = try Self.field(fields[1], "hour", 0...23).sorted()
        days = Set(try Self.field(fields[2], "day-of-month", 1...31))
        months = Set(try Self.field(fields[3], "month", 1...12, names: monthNames, nameBase: 1))
        weekdays = Set(try Self.field(fields[4], "day-of-week", 0...7, names: dayNames, nameBase: 0).map { $0 % 7 })
        daysRestricted = fields[2] != "*" && fields[2] != "?"
        weekdaysRestricted = fields[4] != "*" && fields[4] != "?"
    }

    private static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>,
                              names: [String] = [], nameBase: Int = 0) throws(CronError) -> [Int] {
        func value(_ s: Substring) throws(CronError) -> Int {
            if let n = Int(s), range.contains(n) { return n }
            if let i = names.firstIndex(of: s.lowercased()) { return i + nameBase }
            throw CronError("\(name) \"\(s)\" is not in \(range.lowerBound)-\(range.upperBound)\(names.isEmpty ? "" : " or a name")")
        }
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let stepParts = part.split(separator: "/", omittingEmptySubsequences: false)
            guard stepParts.count <= 2, !stepParts[0].isEmpty else { throw CronError("\(name) \"\(part)\" is malformed") }
            var step = 1
            if stepParts.count == 2 {
                guard let s = Int(stepParts[1]), s > 0 else { throw CronError("\(name) step in \"\(part)\" must be a positive integer") }
                step = s
            }
            let base = stepParts[0]
            var lo = range.lowerBound, hi = range.upperBound
            if base == "*" || base == "?" {
                // whole range
            } else if let dash = base.firstIndex(of: "-") {
                lo = try value(base[..<dash])
                hi = try value(base[base.index(after: dash)...])
                guard lo <= hi else { throw CronError("\(name) range \"\(base)\" runs backwards") }
            } else {
                lo = try value(base)
                hi = stepParts.count == 2 ? range.upperBound : lo
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return Array(out)
    }

    /// The first firing instant strictly after `date`, or nil if none within 8 years (such as February 30th).
    public func next(after date: Date) -> Date? {
        let start = Int(date.timeIntervalSince1970.rounded(.down))
        let startWall = start + timeZone.secondsFromGMT(for: date)
        var day = Self.floorDiv(startWall, 86_400)
        for _ in 0..<(366 * 8) {
            defer { day += 1 }
            let (y, m, d) = Self.civil(fromDays: day)
            guard months.contains(m) else { continue }
            let weekday = ((day % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
            let dayOK = days.contains(d), weekdayOK = weekdays.contains(weekday)
            let matches = daysRestricted && weekdaysRestricted ? (dayOK || weekdayOK)
                : (daysRestricted ? dayOK : true) && (weekdaysRestricted ? weekdayOK : true)
            guard matches else { continue }
            _ = y
            for h in hours {
                for mi in minutes {
                    let wall = day * 86_400 + h * 3600 + mi * 60
                    guard wall + 86_400 > startWall else { continue }
                    if let instant = resolve(wall: wall), instant > start { return Date(timeIntervalSince1970: TimeInterval(instant)) }
                }
            }
        }
        return nil
    }

    /// The instant of a local wall time: the first occurrence when repeated, the end of the gap when skipped.
    func resolve(wall: Int) -> Int? {
        let offBefore = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wall - 86_400)))
        let offAfter = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(wall + 86_400)))
        let candidates = Set([wall - offBefore, wall - offAfter]).sorted().filter {
            $0 + timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval($0))) == wall
        }
        if let first = candidates.first { return first }
        // Skipped: fire when the clocks jump past it.
        let from = Date(timeIntervalSince1970: TimeInterval(wall - max(offBefore, offAfter) - 86_400))
        return timeZone.nextDaylightSavingTimeTransition(after: from).map { Int($0.timeIntervalSince1970) }
    }

    /// The most recent firing instant at or before `date`, searching back at most `window` seconds.
    ///
    /// Looks back over spans growing eightfold from a minute, so the cost is that of the few firings in the
    /// smallest span holding one, not of every firing in the window (an every-minute schedule over a year
    /// window took seconds; scripts/fuzz.sh cron).
    public func previous(atOrBefore date: Date, window: TimeInterval) -> Date? {
        var span: TimeInterval = 61
        while true {
            let w = min(span, window)
            var t = date.addingTimeInterval(-w - 1)
            var last: Date?
            while let n = next(after: t), n <= date {
                last = n
                t = n
            }
            if last != nil || w >= window { return last }
            span *= 8
        }
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// Howard Hinnant's civil-from-days.
    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

extension CronSchedule {
    public static func == (a: CronSchedule, b: CronSchedule) -> Bool {
        a.expression == b.expression && a.timeZone.identifier == b.timeZone.identifier
    }
}

/// An invalid cron expression or time zone.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
