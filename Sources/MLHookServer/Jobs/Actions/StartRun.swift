import AsyncHTTPClient
import Foundation
import MLHookCore
import NIOCore
import Signing

/// `start_run`: fetches the event's commit (or the action's repository and ref) with git, zips the rule's
/// `dir`, and starts the run with an id derived from the job, so a retried start never makes a second run.
/// The job then watches the run (`RunWatcher`).
struct StartRun: JobAction {
    static let type = ActionType.startRun
    static let startsRun = true

    struct Parameters: Sendable {
        var repository: String?
        var ref: String?
        var pullRequest: Int?
        var githubAPI: String
        var dir: String
        var gitUser: String
        var script: String
        var compute: String
        var arguments: [String]?
        var environment: [String: String]?
        var maxRunSeconds: Int?
        var experiment: String
    }

    struct Output: ActionOutput {
        var experiment: String
        var runID: String
        var commit: String
        var json: JSONValue { ["experiment": .string(experiment), "run_id": .string(runID), "commit": .string(commit)] }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        Parameters(repository: p.string("repository"), ref: p.string("ref"), pullRequest: p.int("pull_request"),
                   githubAPI: p.string("github_api") ?? "https://api.github.com", dir: p.string("dir") ?? ".",
                   gitUser: p.string("git_user") ?? "x-access-token", script: p.string("script") ?? "", compute: p.string("compute") ?? "",
                   arguments: p.list("arguments"), environment: p.map("environment"), maxRunSeconds: p.int("max_run_seconds"),
                   experiment: p.string("experiment") ?? "default")
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        guard let git = context.git else { throw JobError("start_run needs a git cache (the job runner was built without one)") }
        var url = p.repository
        var commit = p.ref
        let token = try context.secret("token")
        if let number = p.pullRequest {
            // A comment on a pull request carries no commit: its head is read from the GitHub API.
            guard let repo = try await context.event()?.normalized?.repository?.fullName else {
                throw JobError("start_run: pull_request \(number) is set but the event names no repository")
            }
            let head = try await Self.pullRequestHead(api: p.githubAPI, repository: repo, number: number, token: token)
            url = url ?? head.cloneURL
            commit = head.sha
        }
        if url == nil || commit == nil, let e = try await context.event()?.normalized {
            url = url ?? e.repository?.cloneURL
            commit = commit ?? e.after
        }
        guard let url, let commit, !commit.isEmpty else {
            throw JobError("start_run needs a commit: the event carries no repository and the action sets no repository/ref")
        }
        // Checked when the event was planned; again here, for a configuration reloaded since.
        if let source = try await context.event()?.stored.summary.source, let why = Self.transportRefusal(url, source: source, config: context.config) {
            throw JobError("start_run: \(why)")
        }
        let credentials = token.map { GitSource.Credentials(user: p.gitUser, token: $0) }
        let (zip, pinned) = try await git.zip(url: url, commit: commit, folder: p.dir, credentials: credentials)
        var configuration: JSONValue = ["Script": .string(p.script), "Target": .string(p.compute)]
        if let args = p.arguments { configuration = configuration.setting("Arguments", .array(args.map { .string($0) })) }
        if let env = p.environment {
            configuration = configuration.setting("Environment", ["EnvironmentVariables": .object(env.mapValues { .string($0) })])
        }
        if let limit = p.maxRunSeconds { configuration = configuration.setting("MaxRunDurationSeconds", .number(Double(limit))) }
        let id = try await context.client.startRun(experiment: p.experiment, zip: zip, definition: ["Configuration": configuration],
                                                   runID: "mlhook_" + context.job.id)
        return Output(experiment: p.experiment, runID: id, commit: pinned)
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
            throw JobError("start_run: github_api must be an https URL (the token is sent to it), got \(api)")
        }
        guard CallbackFormatter.isRepositoryName(repository) else { throw JobError("start_run: \"\(repository)\" is not an owner/name") }
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
            throw JobError("start_run: the GitHub API could not be reached for pull request \(repository)#\(number): \(error)", retryable: true)
        }
        let code = Int(response.status.code)
        guard code == 200, let json = JSONValue(json: Array(body.readableBytesView)) else {
            // Throttled or down: tried again with backoff; anything else (not found, no access) is final.
            throw JobError("start_run: the GitHub API answered \(code) for pull request \(repository)#\(number)",
                           retryable: code == 429 || code >= 500)
        }
        guard let sha = json.value(at: "head.sha")?.string?.lowercased(), GitSource.isCommitID(sha) else {
            throw JobError("start_run: pull request \(repository)#\(number) has no head commit")
        }
        return (sha, json.value(at: "head.repo.clone_url")?.string)
    }
}

private extension String {
    func trimmingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
