import AsyncHTTPClient
import Foundation
import MLHookCore
import NIOCore
import Signing

/// Where an action's code comes from: the event's commit, or the action's `repository` and `ref`, or a pull
/// request's head (`pull_request`, through the GitHub API), fetched with git and zipped at `dir`. Shared by
/// `start_run` (v1) and `submit_job` (v2).
struct CodeLocation: Sendable {
    var repository: String?
    var ref: String?
    var pullRequest: Int?
    var githubAPI: String
    var dir: String
    var gitUser: String

    init(_ p: ActionParameters) {
        repository = p.string("repository")
        ref = p.string("ref")
        pullRequest = p.int("pull_request")
        githubAPI = p.string("github_api") ?? "https://api.github.com"
        dir = p.string("dir") ?? "."
        gitUser = p.string("git_user") ?? "x-access-token"
    }

    /// The zip of `dir` at the resolved commit, and that commit.
    func fetch(in context: ActionContext, action: ActionType) async throws -> (zip: [UInt8], commit: String) {
        let name = action.rawValue
        guard let git = context.git else { throw JobError("\(name) needs a git cache (the job runner was built without one)") }
        var url = repository
        var commit = ref
        let token = try context.secret("token")
        if let number = pullRequest {
            // A comment on a pull request carries no commit: its head is read from the GitHub API.
            guard let repo = try await context.facts()?.repository else {
                throw JobError("\(name): pull_request \(number) is set but the event names no repository")
            }
            // The API gets the token only where the rule names it in plain text (or leaves the default).
            let apiTemplate = context.rule.flatMap { r in context.job.actionIndex < r.actions.count ? r.actions[context.job.actionIndex].parameters["github_api"] : nil }
            let apiIsConfigured: Bool = if case .single(let t)? = apiTemplate { t.isLiteral } else { apiTemplate == nil }
            let head = try await Self.pullRequestHead(api: githubAPI, repository: repo, number: number, token: apiIsConfigured ? token : nil)
            url = url ?? head.cloneURL
            commit = head.sha
        }
        if url == nil || commit == nil, let f = try await context.facts() {
            url = url ?? f.cloneURL
            commit = commit ?? f.commit
        }
        guard let url, let commit, !commit.isEmpty else {
            throw JobError("\(name) needs a commit: the event carries no repository and the action sets no repository/ref")
        }
        // Checked when the event was planned; again here, for a configuration reloaded since.
        if let source = try await context.facts()?.source, let why = Self.transportRefusal(url, source: source, config: context.config) {
            throw JobError("\(name): \(why)")
        }
        var credentials = token.map { GitSource.Credentials(user: gitUser, token: $0) }
        if credentials != nil, let refusal = Self.tokenRefusal(url, context: context, source: try await context.facts()?.source) {
            context.logger.warning("\(name): fetching without the token: \(refusal)")
            credentials = nil
        }
        return try await git.zip(url: url, commit: commit, folder: dir, credentials: credentials)
    }

    /// Why the action's token may not go to `url`, or nil when it may. A token goes to the origin of the source's
    /// forge (`forge_url`, `https://github.com` for GitHub sources) or to a `repository` the rule states in plain
    /// text; never to a host that an event's payload named (a push whose `clone_url` points elsewhere).
    static func tokenRefusal(_ url: String, context: ActionContext, source: String?) -> String? {
        var origins: [String] = []
        if let source, let forge = context.config.source(named: source)?.tokenOrigin { origins.append(forge) }
        if let rule = context.rule, context.job.actionIndex < rule.actions.count,
           case .single(let repository)? = rule.actions[context.job.actionIndex].parameters["repository"], repository.isLiteral {
            origins.append(repository.source)
        }
        if origins.contains(where: { TokenDestination.sameOrigin(url, as: $0) }) { return nil }
        return "\(GitSource.redacted(url)) is not on the source's forge"
            + (origins.isEmpty ? " (set sources[].forge_url to send it)" : " (\(origins.map { GitSource.redacted($0) }.joined(separator: ", ")))")
    }

    /// Why `source`'s events may not name `url`, or nil when they may: its transport is not in the source's
    /// `git_schemes` (a path on this machine needs `file`). Nil for events of no configured source (schedule ticks).
    static func transportRefusal(_ url: String, source: String, config: MLHookConfig) -> String? {
        guard let allowed = config.source(named: source)?.gitSchemes else { return nil }
        let scheme = gitScheme(url)
        guard !allowed.contains(scheme) else { return nil }
        return "the repository \(GitSource.redacted(url)) uses \(scheme), which source \(source) does not allow "
            + "(sources[\(source)].git_schemes: \(allowed.joined(separator: ", ")))"
    }

    /// A repository URL's transport: its scheme, or `ssh` for scp-like `user@host:path`, or `file` for a bare path.
    static func gitScheme(_ url: String) -> String {
        if let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") { return url[..<colon].lowercased() }
        if url.contains(":"), !url.hasPrefix("/"), !url.hasPrefix(".") { return "ssh" }
        return "file"
    }

    /// A pull request's head commit and the repository it lives in (a fork's, for a pull request from a fork),
    /// from `GET {api}/repos/{owner}/{name}/pulls/{number}`, with the token when there is one (https only, or
    /// plain http to a loopback host).
    static func pullRequestHead(api: String, repository: String, number: Int, token: WebhookSecret?) async throws -> (sha: String, cloneURL: String?) {
        guard TokenDestination.allows(api) else {
            throw JobError("github_api must be an https URL (the token is sent to it), got \(api)")
        }
        guard CallbackFormatter.isRepositoryName(repository) else { throw JobError("\"\(repository)\" is not an owner/name") }
        var request = HTTPClientRequest(url: api.trimmingSuffix("/") + "/repos/\(repository)/pulls/\(number)")
        request.headers.add(name: "Accept", value: "application/vnd.github+json")
        request.headers.add(name: "User-Agent", value: "mlhook")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token.text)") }
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            body = try await response.body.collect(upTo: 4 << 20)
        } catch {
            throw JobError("the GitHub API could not be reached for pull request \(repository)#\(number): \(error)", retryable: true)
        }
        let code = Int(response.status.code)
        guard code == 200, let json = JSONValue(json: Array(body.readableBytesView)) else {
            // Throttled or down: tried again with backoff; anything else (not found, no access) is final.
            throw JobError("the GitHub API answered \(code) for pull request \(repository)#\(number)",
                           retryable: code == 429 || code >= 500)
        }
        guard let sha = json.value(at: "head.sha")?.string?.lowercased(), GitSource.isCommitID(sha) else {
            throw JobError("pull request \(repository)#\(number) has no head commit")
        }
        return (sha, json.value(at: "head.repo.clone_url")?.string)
    }
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
