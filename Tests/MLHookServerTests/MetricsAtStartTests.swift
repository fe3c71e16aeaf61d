import Foundation
import MLHookCore
@testable import MLHookServer
import Testing

/// What the run-book's alerts match exists from the start, at zero; and a run's duration is recorded from the
/// times aml-local writes (with a zone now, without one in older records) as from Azure's.
@Suite struct MetricsAtStartTests {
    @Test func theRunBooksSeriesArePresentAtZeroBeforeAnythingHappens() {
        let text = String(decoding: MLHookMetrics().registry.emitToBuffer(), as: UTF8.self)
        for series in [#"mlhook_run_duration_seconds_count{status="Completed"} 0"#, #"mlhook_runs_finished_total{status="Failed"} 0"#,
                       #"mlhook_jobs_finished_total{action="start_run",state="dead"} 0"#, #"mlhook_config_reloads_total{outcome="rejected"} 0"#,
                       #"mlhook_callbacks_total{kind="url",outcome="dead"} 0"#] {
            #expect(text.contains(series), "\(series)")
        }
    }

    @Test func aRunsDurationIsReadFromEveryTimeFormatItMeets() {
        for (start, end) in [("2026-12-02T19:40:00.000Z", "2026-12-02T19:41:30.500Z"),   // Azure, and aml-local now
                             ("2026-12-02T19:40:00.000", "2026-12-02T19:41:30.500"),     // aml-local records before the zone
                             ("2026-12-02T19:40:00Z", "2026-12-02T19:41:30.5Z")] {
            let run: JSONValue = ["startTimeUtc": .string(start), "endTimeUtc": .string(end)]
            #expect(RunWatcher.runDuration(run) == .milliseconds(90_500), "\(start) → \(end)")
        }
    }
}
