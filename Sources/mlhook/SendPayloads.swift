import Foundation
import MLHookCore
import MLHookServer

/// The payloads `mlhook send` builds when no `--payload` is given: a realistic push of a local repository's
/// commit for every provider's push event, and a small well-formed event for the others.
enum SendPayloads {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// The events a push payload is built for, by provider.
    static let pushEvents: [String: String] = ["github": "push", "gitea": "push", "gitlab": "Push Hook", "bitbucket": "repo:push"]

    /// A local repository's commit and what it changed.
    struct Commit {
        let path: String
        let fullName: String
        let sha: String
        /// The commit before it (its first parent), or nil for a repository's first commit.
        let parent: String?
        let ref: String
        /// What the commit changed, as a push payload lists it.
        let added: [String], modified: [String], removed: [String]
        var cloneURL: String { "file://" + path }
        var name: String { String(fullName.split(separator: "/").last ?? "repo") }
        /// The commit as a push payload's `commits` lists it.
        var changes: JSONValue {
            ["id": .string(sha), "added": .array(added.map(JSONValue.string)), "modified": .array(modified.map(JSONValue.string)),
             "removed": .array(removed.map(JSONValue.string))]
        }
    }

    static func commit(repo: String, ref: String) async throws -> Commit {
        let path = URL(fileURLWithPath: repo).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: path + "/.git") else {
            throw Failure(description: "\(repo) is not a git repository (the sample's, .mlhook/sample-repo, exists once mlhook serve has run)")
        }
        let git = GitSource(cacheDirectory: "")
        let sha: String
        do { sha = try await git.output(["-C", path, "rev-parse", "--verify", "--end-of-options", ref + "^{commit}"]) } catch {
            throw Failure(description: "\(repo) has no commit \(ref)")
        }
        let parent = try? await git.output(["-C", path, "rev-parse", "--verify", "-q", "--end-of-options", sha + "^1"])
        // A status per path (A, M, T, D; a rename is the old path removed and the new one added; a first commit is
        // all added), as the providers list them.
        let statuses = (try? await git.output(["-C", path, "show", "--pretty=format:", "--name-status", "--no-renames", "--end-of-options", sha])) ?? ""
        var added: [String] = [], modified: [String] = [], removed: [String] = []
        for line in statuses.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0].first {
            case "A", "C": added.append(parts[1])
            case "D": removed.append(parts[1])
            default: modified.append(parts[1])
            }
        }
        // The sample's repository is the one the embedded rule matches.
        let fullName = path.hasSuffix("/.mlhook/sample-repo") ? "mlhook/sample" : "local/" + URL(fileURLWithPath: path).lastPathComponent
        let branch = ref.hasPrefix("refs/") ? ref : "refs/heads/" + ref
        return Commit(path: path, fullName: fullName, sha: sha, parent: parent.flatMap { $0.isEmpty ? nil : $0 }, ref: branch,
                      added: added, modified: modified, removed: removed)
    }

    /// The payload for `provider`'s `event`, with `commit` for push events. - Throws: `Failure` naming what is built in.
    static func build(provider: String, event: String, commit: () async throws -> Commit, text: String) async throws -> (body: [UInt8], event: String) {
        let zero = String(repeating: "0", count: 40)
        switch (provider, event) {
        case ("github", "push"), ("gitea", "push"):
            let c = try await commit()
            let payload: JSONValue = [
                "ref": .string(c.ref), "before": .string(c.parent ?? zero), "after": .string(c.sha),
                "repository": ["full_name": .string(c.fullName), "name": .string(c.name), "clone_url": .string(c.cloneURL), "default_branch": "main"],
                "commits": [c.changes],
                "head_commit": ["id": .string(c.sha)], "pusher": ["name": "mlhook-send"], "sender": ["login": "mlhook-send"],
            ]
            return (Array(payload.text.utf8), event)
        case ("gitlab", "Push Hook"):
            let c = try await commit()
            let payload: JSONValue = [
                "object_kind": "push", "ref": .string(c.ref), "before": .string(c.parent ?? zero), "after": .string(c.sha), "checkout_sha": .string(c.sha),
                "user_username": "mlhook-send",
                "project": ["path_with_namespace": .string(c.fullName), "name": .string(c.name), "git_http_url": .string(c.cloneURL), "default_branch": "main"],
                "commits": [c.changes],
            ]
            return (Array(payload.text.utf8), event)
        case ("bitbucket", "repo:push"):
            let c = try await commit()
            let payload: JSONValue = [
                "repository": ["full_name": .string(c.fullName), "name": .string(c.name), "links": ["html": ["href": .string(c.cloneURL)]]],
                "actor": ["nickname": "mlhook-send"],
                "push": ["changes": [["new": ["type": "branch", "name": .string(String(c.ref.dropFirst("refs/heads/".count))), "target": ["hash": .string(c.sha)]],
                                      "old": c.parent.map { ["type": "branch", "name": .string(String(c.ref.dropFirst("refs/heads/".count))), "target": ["hash": .string($0)]] } ?? nil]]],
            ]
            return (Array(payload.text.utf8), event)
        case ("github", "ping"), ("gitea", "ping"):
            return (Array(#"{"zen":"Keep it logically awesome.","hook_id":1}"#.utf8), event)
        case ("slack", _):
            // EVENT is the slash command; --text its text.
            let command = event.hasPrefix("/") ? event : "/" + event
            let form = "command=\(FormURLEncoded.escape(command))&text=\(FormURLEncoded.escape(text))&user_id=U0MLHOOKSEND&user_name=mlhook-send"
            return (Array(form.utf8), command)
        case ("standard", _), ("generic", _):
            let payload: JSONValue = ["type": .string(event), "timestamp": .string(Date().formatted(.iso8601)), "data": [:]]
            return (Array(payload.text.utf8), event)
        default:
            throw Failure(description: "no built-in payload for \(provider) \(event): pass --payload FILE. Built in: "
                          + "github|gitea push (of --repo, --ref), gitlab \"Push Hook\", bitbucket repo:push, github|gitea ping, "
                          + "slack /COMMAND (--text), standard TYPE, generic EVENT")
        }
    }
}
