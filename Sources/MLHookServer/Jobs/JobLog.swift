import Foundation
import Logging
import MLHookCore
import Store

/// What every log line about a job carries, and the notes the worker pool and the run watcher share.
enum JobLog {
    /// `job_id`, `event_id` and, when known, `delivery_id`.
    static func meta(_ job: JobRecord) -> Logger.Metadata {
        var m: Logger.Metadata = ["job_id": .string(job.id), "event_id": .string(job.eventID)]
        if let d = job.deliveryID { m["delivery_id"] = .string(d) }
        return m
    }

    /// Logs the callbacks the store refused (Slack's 5 responses per response_url were used).
    static func noteRefused(_ count: Int, _ job: JobRecord, logger: Logger) {
        guard count > 0 else { return }
        logger.notice("slack: the command's response_url already has \(CallbackFormatter.slackResponseLimit) responses; this job's is not sent",
                      metadata: meta(job))
    }
}
