import Foundation
import MLHookCore
import Testing

@Suite struct CronScheduleTests {
    let berlin = TimeZone(identifier: "Europe/Berlin")!
    let utc = TimeZone(identifier: "UTC")!

    func date(_ iso: String) -> Date { ISO8601DateFormatter().date(from: iso)! }
    func iso(_ d: Date?) -> String? { d.map { ISO8601DateFormatter().string(from: $0) } }

    @Test func nightlyInBerlinAcrossSpringForward() throws {
        let s = try CronSchedule("0 3 * * *", timeZone: berlin)
        // 2026-03-29: clocks go 02:00 CET -> 03:00 CEST at 01:00Z; 03:00 local exists and is 01:00Z.
        #expect(iso(s.next(after: date("2026-03-28T12:00:00Z"))) == "2026-03-29T01:00:00Z")
        #expect(iso(s.next(after: date("2026-03-29T01:00:00Z"))) == "2026-03-30T01:00:00Z")
        #expect(iso(s.next(after: date("2026-03-27T12:00:00Z"))) == "2026-03-28T02:00:00Z", "03:00 CET is 02:00Z")
    }

    @Test func aSkippedLocalTimeFiresOnceWhenTheClocksJump() throws {
        let s = try CronSchedule("30 2 * * *", timeZone: berlin)
        // 02:30 does not exist on 2026-03-29: it fires at the jump (01:00Z = 03:00 CEST), once.
        let skipped = s.next(after: date("2026-03-28T12:00:00Z"))
        #expect(iso(skipped) == "2026-03-29T01:00:00Z")
        #expect(iso(s.next(after: skipped!)) == "2026-03-30T00:30:00Z")
    }

    @Test func aRepeatedLocalTimeFiresOnceAtItsFirstOccurrence() throws {
        let s = try CronSchedule("30 2 * * *", timeZone: berlin)
        // 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00Z, so 02:30 happens at 00:30Z and again at 01:30Z.
        let first = s.next(after: date("2026-10-24T12:00:00Z"))
        #expect(iso(first) == "2026-10-25T00:30:00Z")
        #expect(iso(s.next(after: first!)) == "2026-10-26T01:30:00Z", "not again at 01:30Z the same night")
    }

    @Test func fieldsRangesStepsNamesAndMacros() throws {
        let every15 = try CronSchedule("*/15 9-10 * * mon-fri", timeZone: utc)
        // 2026-11-21 is a Saturday: the next is Monday 2026-11-23 09:00.
        #expect(iso(every15.next(after: date("2026-11-21T09:00:00Z"))) == "2026-11-23T09:00:00Z")
        #expect(iso(every15.next(after: date("2026-11-23T10:45:00Z"))) == "2026-11-24T09:00:00Z")
        let hourly = try CronSchedule("@hourly", timeZone: utc)
        #expect(iso(hourly.next(after: date("2026-11-22T08:59:59Z"))) == "2026-11-22T09:00:00Z")
        let weekly = try CronSchedule("@weekly", timeZone: utc)
        #expect(iso(weekly.next(after: date("2026-11-22T00:00:00Z"))) == "2026-11-29T00:00:00Z", "Sundays")
        let daily = try CronSchedule("@daily", timeZone: utc)
        #expect(iso(daily.next(after: date("2026-12-31T23:59:00Z"))) == "2027-01-01T00:00:00Z")
        // Day-of-month and day-of-week both restricted: either matches (classic cron).
        let either = try CronSchedule("0 0 13 * fri", timeZone: utc)
        #expect(iso(either.next(after: date("2026-11-22T00:00:00Z"))) == "2026-11-27T00:00:00Z")
        #expect(iso(either.next(after: date("2026-12-05T00:00:00Z"))) == "2026-12-11T00:00:00Z")
        #expect(iso(either.next(after: date("2026-12-11T00:00:00Z"))) == "2026-12-13T00:00:00Z")
        let leap = try CronSchedule("0 12 29 feb *", timeZone: utc)
        #expect(iso(leap.next(after: date("2026-03-01T00:00:00Z"))) == "2028-02-29T12:00:00Z")
        #expect(try CronSchedule("0 0 30 2 *").next(after: Date()) == nil)
    }

    @Test func previousTickWithinAWindow() throws {
        let s = try CronSchedule("0 3 * * *", timeZone: berlin)
        #expect(iso(s.previous(atOrBefore: date("2026-11-22T05:00:00Z"), window: 6 * 3600)) == "2026-11-22T02:00:00Z")
        #expect(s.previous(atOrBefore: date("2026-11-22T05:00:00Z"), window: 3600) == nil)
    }

    @Test func errorsNameTheField() {
        for (expr, says) in [("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day-of-month"),
                             ("* * * 13 *", "month"), ("* * * * 8", "day-of-week"), ("* * *", "5 fields"),
                             ("*/0 * * * *", "step"), ("5-1 * * * *", "backwards"), ("* * * foo *", "month")] {
            do {
                _ = try CronSchedule(expr)
                Issue.record("\(expr) accepted")
            } catch {
                #expect(error.description.contains(says), "\(expr): \(error)")
            }
        }
    }

    /// Found by scripts/fuzz.sh (cron, a timeout): the latest tick in a year-long window of a busy schedule was
    /// found by walking every tick in it. It is the same tick as that walk finds, found at once.
    @Test func theLatestTickInALongWindowIsFoundWithoutWalkingEveryTick() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_000)  // 2023-11-14 22:13:20 UTC, a Tuesday
        for (expression, expected) in [("* 9-17 * * MON-FRI", "2023-11-14T17:59:00Z"), ("0 3 * * *", "2023-11-14T03:00:00Z"),
                                       ("0 0 29 2 *", "2020-02-29T00:00:00Z"), ("*/15 * * * *", "2023-11-14T22:00:00Z")] {
            let schedule = try CronSchedule(expression)
            let started = ContinuousClock.now
            let tick = schedule.previous(atOrBefore: now, window: 366 * 86_400 * 4)
            #expect(tick?.formatted(.iso8601) == expected, "\(expression)")
            #expect(ContinuousClock.now - started < .seconds(5), "\(expression)")  // walking every tick took minutes
        }
        #expect(try CronSchedule("0 0 29 2 *").previous(atOrBefore: now, window: 86_400) == nil, "nothing within a day")
    }
}
