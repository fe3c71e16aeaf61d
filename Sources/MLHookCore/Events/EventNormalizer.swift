/// Turns a provider's raw delivery into a `NormalizedEvent`. Pure: bytes in, value out.
///
/// Unknown events and payloads that lack expected fields become kind `other` with what could be read; a
/// normalizer never fails on a well-formed body.
public enum EventNormalizer {
    /// A stored delivery, as ingress kept it.
    public struct Delivery: Sendable {
        public var source: String
        public var sourceType: SourceType
        /// The provider's event name (header, Slack command, or body `type`).
        public var providerEvent: String
        public var deliveryID: String
        public var contentType: String
        public var body: [UInt8]

        public init(source: String, sourceType: SourceType, providerEvent: String, deliveryID: String,
                    contentType: String, body: [UInt8]) {
            self.source = source
            self.sourceType = sourceType
            self.providerEvent = providerEvent
            self.deliveryID = deliveryID
            self.contentType = contentType
            self.body = body
        }
    }

    /// Normalizes one delivery.
    public static func normalize(_ d: Delivery) -> NormalizedEvent {
        let form = d.contentType == "application/x-www-form-urlencoded"
        let fields = form ? (try? FormURLEncoded.dictionary(String(decoding: d.body, as: UTF8.self))) ?? [:] : [:]
        let payload: JSONValue
        if form {
            if let p = fields["payload"], let v = JSONValue(json: Array(p.utf8)) {
                payload = v
            } else {
                payload = .object(fields.mapValues { .string($0) })
            }
        } else {
            payload = JSONValue(json: d.body) ?? .null
        }
        var e = NormalizedEvent(source: d.source, kind: .other, providerEvent: d.providerEvent, deliveryID: d.deliveryID, payload: payload)
        switch d.sourceType {
        case .github, .gitea: githubLike(&e, event: d.providerEvent)
        case .gitlab: gitlab(&e)
        case .bitbucket:
            if payload["eventKey"] != nil { bitbucketDataCenter(&e) } else { bitbucketCloud(&e, event: d.providerEvent) }
        case .slack: slack(&e, fields: fields)
        case .standard, .generic: break
        }
        return e
    }

    static func isZero(_ sha: String?) -> Bool { sha.map { !$0.isEmpty && $0.allSatisfy { $0 == "0" } } ?? false }

    /// Sets ref, branch or tag from a full ref.
    static func setRef(_ e: inout NormalizedEvent, _ ref: String?) {
        guard let ref else { return }
        e.ref = ref
        if ref.hasPrefix("refs/heads/") { e.branch = String(ref.dropFirst(11)) }
        else if ref.hasPrefix("refs/tags/") { e.tag = String(ref.dropFirst(10)) }
    }

    /// Chooses push, tag, branch_delete or other (tag deletions) from the ref and deletion flag.
    static func refKind(_ e: inout NormalizedEvent) {
        if e.deleted { e.kind = e.branch != nil ? .branchDelete : .other }
        else if e.tag != nil { e.kind = .tag }
        else if e.branch != nil { e.kind = .push }
    }

    static func files(_ commits: [JSONValue]?) -> ChangedFiles {
        var f = ChangedFiles()
        for c in commits ?? [] {
            f.added += c["added"]?.array?.compactMap(\.string) ?? []
            f.modified += c["modified"]?.array?.compactMap(\.string) ?? []
            f.removed += c["removed"]?.array?.compactMap(\.string) ?? []
        }
        return f
    }

    /// A comment's first line, when it starts with `/`, is a command (`/retrain fast` → `/retrain`, `fast`).
    static func commentCommand(_ body: String?, user: String?) -> CommandInfo? {
        guard let line = body?.split(separator: "\n", omittingEmptySubsequences: true).first?
            .trimmingCharacters(in: .whitespaces), line.hasPrefix("/") else { return nil }
        let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        return CommandInfo(name: String(parts[0]), text: parts.count > 1 ? String(parts[1]) : "", userID: user)
    }

    // GitHub and Gitea/Forgejo share their payload shapes.
    static func githubLike(_ e: inout NormalizedEvent, event: String) {
        let p = e.payload
        if let repo = p["repository"], let full = repo["full_name"]?.string {
            e.repository = RepositoryInfo(fullName: full, cloneURL: repo["clone_url"]?.string, defaultBranch: repo["default_branch"]?.string)
        }
        e.actor = p.value(at: "sender.login")?.string ?? p.value(at: "pusher.name")?.string ?? p.value(at: "sender.username")?.string
        e.action = p["action"]?.string
        switch event {
        case "push":
            setRef(&e, p["ref"]?.string)
            e.before = p["before"]?.string
            e.after = p["after"]?.string
            e.deleted = p["deleted"]?.bool ?? isZero(e.after)
            e.changedFiles = files(p["commits"]?.array)
            if e.actor == nil { e.actor = p.value(at: "pusher.login")?.string ?? p.value(at: "pusher.username")?.string }
            refKind(&e)
        case "pull_request":
            e.kind = .pullRequest
            if p.value(at: "pull_request.merged")?.bool == true, e.action == "closed" { e.action = "merged" }
            setRef(&e, p.value(at: "pull_request.head.ref")?.string.map { "refs/heads/" + $0 })
            e.after = p.value(at: "pull_request.head.sha")?.string
        case "issue_comment", "pull_request_review_comment", "commit_comment":
            e.kind = .comment
            e.command = commentCommand(p.value(at: "comment.body")?.string, user: e.actor)
        case "release":
            e.kind = .release
            e.tag = p.value(at: "release.tag_name")?.string
            e.ref = e.tag.map { "refs/tags/" + $0 }
        default:
            e.kind = .other
        }
    }

    static func gitlab(_ e: inout NormalizedEvent) {
        let p = e.payload
        if let project = p["project"], let full = project["path_with_namespace"]?.string {
            e.repository = RepositoryInfo(fullName: full, cloneURL: project["git_http_url"]?.string, defaultBranch: project["default_branch"]?.string)
        }
        e.actor = p["user_username"]?.string ?? p.value(at: "user.username")?.string
        e.action = p.value(at: "object_attributes.action")?.string
        switch p["object_kind"]?.string {
        case "push", "tag_push":
            setRef(&e, p["ref"]?.string)
            e.before = p["before"]?.string
            e.after = p["after"]?.string ?? p["checkout_sha"]?.string
            e.deleted = isZero(e.after)
            e.changedFiles = files(p["commits"]?.array)
            refKind(&e)
        case "merge_request":
            e.kind = .pullRequest
            if e.action == "merge" { e.action = "merged" }
            setRef(&e, p.value(at: "object_attributes.source_branch")?.string.map { "refs/heads/" + $0 })
            e.after = p.value(at: "object_attributes.last_commit.id")?.string
        case "note":
            e.kind = .comment
            e.command = commentCommand(p.value(at: "object_attributes.note")?.string, user: e.actor)
        case "release":
            e.kind = .release
            e.tag = p["tag"]?.string
            e.ref = e.tag.map { "refs/tags/" + $0 }
        default:
            e.kind = .other
        }
    }

    static func bitbucketCloud(_ e: inout NormalizedEvent, event: String) {
        let p = e.payload
        if let full = p.value(at: "repository.full_name")?.string {
            e.repository = RepositoryInfo(fullName: full, cloneURL: "https://bitbucket.org/\(full).git",
                                          defaultBranch: p.value(at: "repository.mainbranch.name")?.string)
        }
        e.actor = p.value(at: "actor.nickname")?.string ?? p.value(at: "actor.username")?.string ?? p.value(at: "actor.display_name")?.string
        switch event {
        case "repo:push":
            guard let change = p.value(at: "push.changes")?.array?.first else { return }
            let new = change["new"], old = change["old"]
            let ref = new ?? old
            let name = ref?["name"]?.string
            let isTag = ref?["type"]?.string == "tag"
            setRef(&e, name.map { (isTag ? "refs/tags/" : "refs/heads/") + $0 })
            e.before = old?.value(at: "target.hash")?.string
            e.after = new?.value(at: "target.hash")?.string
            e.deleted = new == nil || new == .null
            refKind(&e)
        case _ where event.hasPrefix("pullrequest:comment"):
            e.kind = .comment
            e.command = commentCommand(p.value(at: "comment.content.raw")?.string, user: e.actor)
        case _ where event.hasPrefix("pullrequest:"):
            e.kind = .pullRequest
            e.action = String(event.dropFirst("pullrequest:".count))
            if e.action == "fulfilled" { e.action = "merged" }
            setRef(&e, p.value(at: "pullrequest.source.branch.name")?.string.map { "refs/heads/" + $0 })
            e.after = p.value(at: "pullrequest.source.commit.hash")?.string
        default:
            e.kind = .other
        }
    }

    static func bitbucketDataCenter(_ e: inout NormalizedEvent) {
        let p = e.payload
        let repo = p["repository"] ?? p.value(at: "pullRequest.toRef.repository")
        if let repo, let slug = repo["slug"]?.string, let key = repo.value(at: "project.key")?.string {
            let clone = repo.value(at: "links.clone")?.array?.first { $0["name"]?.string == "http" }?["href"]?.string
            e.repository = RepositoryInfo(fullName: "\(key)/\(slug)", cloneURL: clone)
        }
        e.actor = p.value(at: "actor.name")?.string ?? p.value(at: "actor.slug")?.string
        let key = p["eventKey"]?.string ?? e.providerEvent
        switch key {
        case "repo:refs_changed":
            guard let change = p["changes"]?.array?.first else { return }
            setRef(&e, change.value(at: "ref.id")?.string ?? change["refId"]?.string)
            e.before = change["fromHash"]?.string
            e.after = change["toHash"]?.string
            e.deleted = change["type"]?.string == "DELETE" || isZero(e.after)
            refKind(&e)
        case _ where key.hasPrefix("pr:comment"):
            e.kind = .comment
            e.command = commentCommand(p.value(at: "comment.text")?.string, user: e.actor)
        case _ where key.hasPrefix("pr:"):
            e.kind = .pullRequest
            e.action = String(key.dropFirst(3))
            setRef(&e, p.value(at: "pullRequest.fromRef.id")?.string)
            e.after = p.value(at: "pullRequest.fromRef.latestCommit")?.string
        default:
            e.kind = .other
        }
    }

    static func slack(_ e: inout NormalizedEvent, fields: [String: String]) {
        guard let command = fields["command"] else { return }
        e.kind = .command
        e.actor = fields["user_id"]
        e.command = CommandInfo(name: command, text: fields["text"] ?? "", userID: fields["user_id"], responseURL: fields["response_url"])
    }
}
