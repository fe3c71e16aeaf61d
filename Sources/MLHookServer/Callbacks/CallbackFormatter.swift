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

    /// The callbacks of a job, from the rule and event as they are now: for jobs planned before they carried a
    /// `JobContext` (and for tests of the formatting). - Parameters: as `callbacks(for:context:…)`; `rule` nil or
    /// without callbacks: none.
    static func callbacks(for job: JobRecord, rule: Rule?, event: ActionContext.LoadedEvent?, state: JobState, result: JSONValue?,
                          error: String?, phase: CallbackPhase, now: Date) -> [NewCallback] {
        guard let rule, !rule.callbacks.isEmpty else { return [] }
        let facts = event.map { loaded in
            loaded.normalized.map { EventFacts($0, kind: loaded.stored.summary.kind, signed: loaded.signed) }
                ?? EventFacts(source: loaded.stored.summary.source, kind: loaded.stored.summary.kind, deliveryID: loaded.stored.summary.deliveryID,
                              signed: loaded.signed)
        }
        return callbacks(for: job, facts: facts, targets: rule.callbacks.map(planned), state: state, result: result, error: error,
                         phase: phase, now: now)
    }

    /// The callbacks of a job from what it carries since planning: the event's facts and its rule's targets as they
    /// were then (a reload since changes nothing here).
    /// - Parameters:
    ///   - job: The job.
    ///   - facts: Its event's facts (nil: the event is known only by id).
    ///   - targets: Its rule's callback targets.
    ///   - state: The job's new state.
    ///   - result: What the action (or the run) produced.
    ///   - error: Why it failed.
    ///   - phase: `.pending` when a run has just started (only `github_status` targets get a pending status),
    ///     `.final` when the job is finished (every target).
    ///   - now: The time stamped in the body.
    static func callbacks(for job: JobRecord, facts: EventFacts?, targets: [PlannedCallbackTarget], state: JobState, result: JSONValue?,
                          error: String?, phase: CallbackPhase, now: Date) -> [NewCallback] {
        guard !targets.isEmpty else { return [] }
        let onlyPending = phase == .pending
        var summary: JSONValue = ["id": .string(job.eventID)]
        var provenance: JSONValue = [:]
        if let f = facts {
            summary = ["id": .string(job.eventID), "source": .string(f.source), "kind": .string(f.kind), "delivery_id": .string(f.deliveryID)]
            provenance = ["repository": f.repository.map(JSONValue.string) ?? nil, "commit": f.commit.map(JSONValue.string) ?? nil,
                          "ref": f.ref.map(JSONValue.string) ?? nil, "actor": f.actor.map(JSONValue.string) ?? nil]
        }
        let body: JSONValue = [
            "type": "mlhook.job.finished", "timestamp": .string(now.formatted(.iso8601)),
            "data": ["job_id": .string(job.id), "status": .string(state.rawValue), "rule": .string(job.rule), "action": .string(job.action),
                     "event": summary, "result": result ?? nil, "error": error.map(JSONValue.string) ?? nil, "provenance": provenance],
        ]
        let run = RunReference(result: result)
        var out: [NewCallback] = []
        for (i, target) in targets.enumerated() {
            switch target {
            case .url(let url, let credential):
                guard !onlyPending else { continue }
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, phase: phase, kind: "url", url: url,
                                       credential: credential, body: body.text))
            case .slack:
                // Slack's response_url takes at most 5 responses within 30 minutes: one per finished job.
                guard !onlyPending, let responseURL = facts?.responseURL,
                      Self.isSlackResponseURL(responseURL, signed: facts?.signed ?? false) else { continue }
                let line = facts?.commandLine ?? job.rule
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
                guard let repo = facts?.repository, let sha = facts?.commit ?? result?["commit"]?.string,
                      Self.isRepositoryName(repo), GitSource.isCommitID(sha) else { continue }
                let ghState = onlyPending ? "pending" : (state == .succeeded ? "success" : "failure")
                var description = onlyPending ? "\(run?.label ?? job.action) started" : "\(job.action) \(state.rawValue)"
                if let status = result?["status"]?.string, !onlyPending { description += " (\(status))" }
                let status: JSONValue = ["state": .string(ghState), "context": .string(context), "description": .string(String(description.prefix(140)))]
                out.append(NewCallback(jobID: job.id, eventID: job.eventID, rule: job.rule, targetIndex: i, phase: phase,
                                       kind: "github_status", url: "\(apiBase)/repos/\(repo)/statuses/\(sha)", credential: token,
                                       body: status.text))
            }
        }
        return out
    }

    /// A job's callbacks from what it carries since planning (`JobContext`); for a job planned before jobs kept one,
    /// from its rule as configured now and its event as `loadEvent` reads it.
    static func callbacks(for job: JobRecord, config: MLHookConfig, loadEvent: () async throws -> ActionContext.LoadedEvent?, state: JobState,
                          result: JSONValue?, error: String?, phase: CallbackPhase, now: Date) async throws -> [NewCallback] {
        if let context = JobContext(text: job.context) {
            return callbacks(for: job, facts: context.facts, targets: context.callbacks, state: state, result: result, error: error,
                             phase: phase, now: now)
        }
        return callbacks(for: job, rule: config.rules.first { $0.name == job.rule }, event: try await loadEvent(), state: state,
                         result: result, error: error, phase: phase, now: now)
    }

    /// A rule's target as a job keeps it: the address, and where its secret comes from (never the secret).
    static func planned(_ target: CallbackTarget) -> PlannedCallbackTarget {
        switch target {
        case .url(let url, let secret): .url(url: url, credential: credential(secret))
        case .slack: .slack
        case .githubStatus(let token, let apiBase, let context): .githubStatus(token: credential(token), apiBase: apiBase, context: context)
        }
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
