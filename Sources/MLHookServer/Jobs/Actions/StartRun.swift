import MLHookCore

/// `start_run`: fetches the event's commit (or the action's repository and ref) with git, zips the rule's
/// `dir`, and starts the run with an id derived from the job, so a retried start never makes a second run.
/// The job then watches the run (`RunWatcher`).
struct StartRun: JobAction {
    static let type = ActionType.startRun
    static let startsRun = true

    struct Parameters: Sendable {
        var repository: String?
        var ref: String?
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
        Parameters(repository: p.string("repository"), ref: p.string("ref"), dir: p.string("dir") ?? ".",
                   gitUser: p.string("git_user") ?? "x-access-token", script: p.string("script") ?? "", compute: p.string("compute") ?? "",
                   arguments: p.list("arguments"), environment: p.map("environment"), maxRunSeconds: p.int("max_run_seconds"),
                   experiment: p.string("experiment") ?? "default")
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        guard let git = context.git else { throw JobError("start_run needs a git cache (the job runner was built without one)") }
        var url = p.repository
        var commit = p.ref
        if url == nil || commit == nil, let e = try await context.event()?.normalized {
            url = url ?? e.repository?.cloneURL
            commit = commit ?? e.after
        }
        guard let url, let commit, !commit.isEmpty else {
            throw JobError("start_run needs a commit: the event carries no repository and the action sets no repository/ref")
        }
        let credentials = try context.secret("token").map { GitSource.Credentials(user: p.gitUser, token: $0) }
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
}
