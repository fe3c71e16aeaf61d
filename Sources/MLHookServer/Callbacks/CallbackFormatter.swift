import Foundation
import MLHookCore
import Store

/// Turns a job's outcome into the callbacks its rule asks for: the signed JSON body for `url` targets, a
/// Slack message for the command's `response_url`, a GitHub commit status. Pure: the job runner queues what
/// it returns in the same transaction that records the outcome.
enum CallbackFormatter {
    /// Slack accepts at most 5 responses per response_url.
    static let slackResponseLimit = 5

    /// Where a command's answer may be posted: an http(s) URL, and from a source that does not check signatures
    /// only Slack's own https hosts, so an unsigned request cannot point mlhook at an address of its choosing.
    static func isSlackResponseURL(_ text: String, signed: Bool) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased(), !host.isEmpty
        else { return false }
        if signed { return scheme == "https" || scheme == "http" }
        return scheme == "https" && (host == "hooks.slack.com" || host.hasSuffix(".slack.com")) && url.port == nil && url.user == nil
    }

    /// The callbacks of a job.
    /// - Parameters:
    ///   - job: The job.
    ///   - rule: Its rule as configured now (nil or without callbacks: none).
    ///   - event: Its event, when still stored.
    ///   - state: The job's new state.
    ///   - result: What the action (or the run) produced.
    ///   - error: Why it failed.
    ///   - phase: `.pending` when a run has just started (only `github_status` targets get a pending status),
    ///     `.final` when the job is finished (every target).
    ///   - now: The time stamped in the body.
    static func callbacks(for job: JobRecord, rule: Rule?, event: ActionContext.LoadedEvent?, state: JobState, result: JSONValue?,
                          error: String?, phase: CallbackPhase, now: Date) -> [NewCallback] {
        guard let rule, !rule.callbacks.isEmpty else { return [] }
        let onlyPending = phase == .pending
        var summary: JSONValue = ["id": .string(job.eventID)]
        var provenance: JSONValue = [:]
        let normalized = event?.normalized
        if let stored = event?.stored {
            summary = ["id": .string(job.eventID), "source": .string(stored.summary.source), "kind": .string(stored.summary.kind),
                       "delivery_id": .string(stored.summary.deliveryID)]
            if let e = normalized {
                provenance = ["repository": e.repository.map { .string($0.fullName) } ?? nil, "commit": e.after.map(JSONValue.string) ?? nil,
                              "ref": e.ref.map(JSONValue.string) ?? nil, "actor": e.actor.map(JSONValue.string) ?? nil]
            }
        }
        let body: JSONValue = [
            "type": "mlhook.job.finished", "timestamp": .string(now.formatted(.iso8601)),
            "data": ["job_id": .string(job.id), "status": .string(state.rawValue), "rule": .string(job.rule), "action": .string(job.action),
                     "event": summary, "result": result ?? nil, "error": error.map(JSONValue.string) ?? nil, "provenance": provenance],
        ]
        let run = RunReference(result: result)
        var out: [NewCallback] = []
        for (i, target) in rule.callbacks.enumerated() {
            switch target {
            case .url(let url, let secret):
                guard !onlyPending else { continue }
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, phase: phase, kind: "url", url: url,
                                       credential: credential(secret), body: body.text))
            case .slack:
                // Slack's response_url takes at most 5 responses within 30 minutes: one per finished job.
                guard !onlyPending, let responseURL = normalized?.command?.responseURL,
                      Self.isSlackResponseURL(responseURL, signed: event?.signed ?? false) else { continue }
                let line = normalized?.command?.line ?? job.rule
                let mark = state == .succeeded ? "✅" : "❌"
                var text = "\(mark) `\(line)`: \(job.action) \(state.rawValue)"
                if let run { text += " (\(run.label)" + (result?["status"]?.string.map { ", \($0)" } ?? "") + ")" }
                if let error { text += "\n> " + String(error.prefix(300)) }
                let message: JSONValue = ["response_type": "in_channel", "text": .string(text)]
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, phase: phase, kind: "slack",
                                       url: responseURL, body: message.text, maxPerURL: slackResponseLimit))
            case .githubStatus(let token, let apiBase, let context):
                // Both go into the URL the token is sent to: only a plain owner/name and a hex commit id.
                // The event's commit, or the one the job fetched (a pull request's head, for a comment).
                guard let repo = normalized?.repository?.fullName, let sha = normalized?.after ?? result?["commit"]?.string,
                      Self.isRepositoryName(repo), GitSource.isCommitID(sha) else { continue }
                let ghState = onlyPending ? "pending" : (state == .succeeded ? "success" : "failure")
                var description = onlyPending ? "\(run?.label ?? job.action) started" : "\(job.action) \(state.rawValue)"
                if let status = result?["status"]?.string, !onlyPending { description += " (\(status))" }
                let status: JSONValue = ["state": .string(ghState), "context": .string(context), "description": .string(String(description.prefix(140)))]
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, phase: phase,
                                       kind: "github_status", url: "\(apiBase)/repos/\(repo)/statuses/\(sha)", credential: credential(token),
                                       body: status.text))
            }
        }
        return out
    }

    /// `owner/name` with GitHub's characters only (letters, digits, `-`, `_`, `.`), so it cannot change the path.
    static func isRepositoryName(_ repo: String) -> Bool {
        let parts = repo.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { p in
            !p.isEmpty && p != "." && p != ".." && p.utf8.allSatisfy { b in
                (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
            }
        }
    }

    /// Where a target's secret comes from, as stored with its callbacks (a literal stays in the configuration).
    static func credential(_ ref: SecretReference) -> CallbackCredential {
        switch ref {
        case .env(let name): .env(name)
        case .file(let path, let create): .file(path, create: create)
        case .literal: .configured
        }
    }
}
