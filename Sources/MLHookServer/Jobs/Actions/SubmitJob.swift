import AzureML
import Foundation
import MLHookCore

/// `submit_job` (v2): fetches the event's commit like `start_run`, uploads the rule's `dir` as a code asset
/// (content-hashed: an unchanged folder is found by its hash and not uploaded again), and submits a command job
/// named after the mlhook job (`ActionContext.runName`), so an automatic retry finds the job it submitted. The job then watches it (`RunWatcher`),
/// which, with `register_model`, registers the job's output as a model version once it is Completed.
struct SubmitJob: JobAction {
    static let type = ActionType.submitJob
    static let startsRun = true

    struct Parameters: Sendable {
        var code: CodeLocation
        var command: String
        var environment: String
        var compute: String?
        var experiment: String
        var displayName: String?
        var inputs: [String: String]
        var environmentVariables: [String: String]
        var tags: [String: String]
        var timeoutSeconds: Int?
        var registerModel: String?
        var modelPath: String
    }

    struct Output: ActionOutput {
        var run: RunReference
        var commit: String
        var codeID: String
        var registerModel: String?
        var modelPath: String
        var json: JSONValue {
            var j: JSONValue = ["api": "v2", "job_name": .string(run.id), "experiment": .string(run.experiment), "commit": .string(commit),
                                "code_id": .string(codeID), "studio_url": run.studioURL.map(JSONValue.string) ?? nil, "run": run.json]
            if let workspace = run.workspace { j = j.setting("workspace", .string(workspace)) }
            if let registerModel { j = j.setting("register_model", .string(registerModel)).setting("model_path", .string(modelPath)) }
            return j
        }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        Parameters(code: CodeLocation(p), command: try p.required("command"), environment: try p.required("environment"),
                   compute: p.string("compute"), experiment: p.string("experiment") ?? "mlhook", displayName: p.string("display_name"),
                   inputs: p.map("inputs") ?? [:], environmentVariables: p.map("environment_variables") ?? [:], tags: p.map("tags") ?? [:],
                   timeoutSeconds: p.int("timeout_seconds"), registerModel: p.string("register_model"), modelPath: p.string("model_path") ?? "model")
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        let fetched = try await p.code.fetch(in: context, action: Self.type)
        let files: [CodeFile]
        do { files = try CodeFile.files(ofZip: fetched.zip) } catch { throw JobError("submit_job: cannot read the fetched code: \(error)") }
        let codeID = try await context.client.ensureCode(name: "mlhook-code", files: files, blockSize: 4 << 20)
        let job = context.job
        // The commit is the one fetched (a branch pinned at fetch time), whatever the event says.
        var tags = p.tags.merging(try await context.provenanceTags()) { $1 }
        tags["mlhook_commit"] = fetched.commit
        var properties: [String: String] = [:]
        if let f = try await context.facts() {
            if let url = f.cloneURL { properties["mlflow.source.git.repoURL"] = GitSource.redacted(url) }
            if let branch = f.branch { properties["mlflow.source.git.branch"] = branch }
        }
        properties["mlflow.source.git.commit"] = fetched.commit
        var request = CommandJobRequest(command: p.command, codeID: codeID, environment: p.environment, experiment: p.experiment)
        request.displayName = p.displayName ?? "\(job.rule) \(fetched.commit.prefix(7))"
        request.computeID = p.compute.map { context.client.v2ID("/computes/\($0)") }
        request.inputs = p.inputs
        request.environmentVariables = p.environmentVariables
        request.tags = tags
        request.properties = properties
        request.timeoutSeconds = p.timeoutSeconds
        let name = context.runName
        let submitted: CommandJobView
        do {
            submitted = CommandJobView(try await context.client.submitJob(name: name, properties: request.json))
        } catch let error as AzureMLError where error.status == 400 || error.status == 409 {
            // A retry after a lost answer: the service may refuse to replace a job it already has. The job is this
            // one's when it carries this mlhook job's tag; anything else is the refusal it looks like.
            guard let existing = (try? await context.client.job(name: name)).map(CommandJobView.init), existing.tags["mlhook_job"] == job.id
            else { throw error }
            submitted = existing
        }
        let run = RunReference(api: .v2, experiment: p.experiment, id: submitted.name.isEmpty ? name : submitted.name, workspace: context.workspace,
                               studioURL: submitted.studioURL)
        return Output(run: run, commit: fetched.commit, codeID: codeID, registerModel: p.registerModel, modelPath: p.modelPath)
    }

    /// `register_model`: once the job Completed, its output folder becomes a version of the model (found again, not
    /// registered twice, when the watcher's pass repeats after a crash).
    func onRunFinished(_ ended: RunEnding) async throws -> [String: JSONValue] {
        guard ended.status == "Completed", let model = ended.started["register_model"]?.string else { return [:] }
        let id = ended.run.id, job = ended.job
        var tags: [String: JSONValue] = ["mlhook_rule": .string(job.rule), "mlhook_event": .string(job.eventID), "mlhook_job": .string(job.id),
                                         "mlhook_azureml_job": .string(id)]
        if let commit = ended.started["commit"]?.string { tags["mlhook_commit"] = .string(commit) }
        let registered = try await RegisterModel.registerV2(ended.client, name: model,
                                                            uri: RegisterModel.jobOutputURI(job: id, path: ended.started["model_path"]?.string ?? "model"),
                                                            tags: tags, description: "job \(id)")
        return ["model": .string(registered)]
    }
}
