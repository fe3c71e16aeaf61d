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
        var code: CodeLocation
        var script: String
        var compute: String
        var arguments: [String]?
        var environment: [String: String]?
        var maxRunSeconds: Int?
        var experiment: String
    }

    struct Output: ActionOutput {
        var run: RunReference
        var commit: String
        var json: JSONValue {
            var j: JSONValue = ["experiment": .string(run.experiment), "run_id": .string(run.id), "commit": .string(commit), "run": run.json]
            if let workspace = run.workspace { j = j.setting("workspace", .string(workspace)) }
            return j
        }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        Parameters(code: CodeLocation(p), script: p.string("script") ?? "", compute: p.string("compute") ?? "",
                   arguments: p.list("arguments"), environment: p.map("environment"), maxRunSeconds: p.int("max_run_seconds"),
                   experiment: p.string("experiment") ?? "default")
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        let code = try await p.code.fetch(in: context, action: Self.type)
        let zip = code.zip, pinned = code.commit
        var configuration: JSONValue = ["Script": .string(p.script), "Target": .string(p.compute)]
        if let args = p.arguments { configuration = configuration.setting("Arguments", .array(args.map { .string($0) })) }
        if let env = p.environment {
            configuration = configuration.setting("Environment", ["EnvironmentVariables": .object(env.mapValues { .string($0) })])
        }
        if let limit = p.maxRunSeconds { configuration = configuration.setting("MaxRunDurationSeconds", .number(Double(limit))) }
        let id = try await context.client.startRun(experiment: p.experiment, zip: zip, definition: ["Configuration": configuration],
                                                   runID: context.runName)
        return Output(run: RunReference(api: .v1, experiment: p.experiment, id: id, workspace: context.workspace), commit: pinned)
    }
}
