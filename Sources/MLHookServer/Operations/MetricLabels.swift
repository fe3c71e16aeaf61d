/// Label values that come from requests, bounded to known sets: an event name is often an unsigned header
/// (`X-GitHub-Event`), so a replayed delivery with made-up names must not grow `/metrics` without bound.
enum MetricLabels {
    /// The event names senders document (GitHub, Gitea/Forgejo, GitLab, Bitbucket, Slack, Standard Webhooks'
    /// examples) and mlhook's own; anything else counts as `other`.
    static let knownKinds: Set<String> = [
        "", "unknown", "schedule", "ping", "push", "create", "delete", "release", "pull_request", "pull_request_review",
        "pull_request_review_comment", "issue_comment", "issues", "workflow_run", "workflow_job", "check_run", "check_suite",
        "status", "deployment", "deployment_status", "repository", "fork", "star", "watch",
        "Push Hook", "Tag Push Hook", "Merge Request Hook", "Note Hook", "Issue Hook", "Release Hook", "Pipeline Hook", "Job Hook",
        "Deployment Hook", "System Hook",
        "repo:push", "repo:fork", "repo:updated", "repo:commit_status_created", "repo:commit_status_updated", "pullrequest:created",
        "pullrequest:updated", "pullrequest:approved", "pullrequest:fulfilled", "pullrequest:rejected", "pullrequest:comment_created",
        "command", "event_callback", "url_verification",
    ]

    /// `kind` as a label value: itself when known, else `other`.
    static func kind(_ kind: String) -> String {
        knownKinds.contains(kind) ? kind : (kind.hasPrefix("/") && kind.count <= 32 && kind.utf8.allSatisfy { $0 > 32 && $0 < 127 } ? "command" : "other")
    }
}
