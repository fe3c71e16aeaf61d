import AzureML
import MLHookCore

/// `register_model`: registers a model version from a v1 run's output (`from_run`), a v2 job's output
/// (`from_job`, an `azureml://jobs/…` model URI) or a URL (v1 or v2 as `azureml.api` says), with provenance tags
/// (rule, event, job, delivery, repository, commit). A retried job first looks for the version its earlier attempt
/// registered (tagged with the job), so a lost answer does not make a second version.
struct RegisterModel: JobAction {
    static let type = ActionType.registerModel

    struct Parameters: Sendable {
        var name: String
        var tags: [String: String]
        var source: Source
        var description: String?

        enum Source: Sendable {
            case url(String)
            case run(id: String, experiment: String, path: String)
            case job(name: String, path: String)
        }
    }

    struct Output: ActionOutput {
        var id: JSONValue?
        var json: JSONValue { ["id": id ?? nil] }
    }

    /// The v2 model URI of a job's output folder.
    static func jobOutputURI(job: String, path: String) -> String {
        "azureml://jobs/\(job)/outputs/artifacts/paths/\(path.hasSuffix("/") ? path : path + "/")"
    }

    /// Registers a v2 model version unless one tagged with `tags["mlhook_job"]` exists (a retry, or a watcher pass
    /// repeated after a crash). - Returns: `name:version`.
    static func registerV2(_ client: any AzureMLClient, name: String, uri: String, tags: [String: JSONValue], description: String?) async throws -> String {
        if let job = tags["mlhook_job"]?.string,
           let done = try await client.modelVersions(name: name, includeArchived: true).first(where: { ModelVersionView($0).tags["mlhook_job"] == job }),
           let version = done["name"]?.string {
            return "\(name):\(version)"
        }
        var properties: JSONValue = ["modelType": "custom_model", "modelUri": .string(uri), "tags": .object(tags), "properties": [:],
                                     "isAnonymous": false, "isArchived": false]
        if let description { properties = properties.setting("description", .string(description)) }
        let made = try await client.registerModelV2(name: name, properties: properties)
        return "\(name):\(made["name"]?.string ?? "?")"
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        let source: Parameters.Source
        if let url = p.string("url") {
            source = .url(url)
        } else if let job = p.string("from_job") {
            source = .job(name: job, path: p.string("path") ?? "model")
        } else {
            source = .run(id: try p.required("from_run"), experiment: p.string("experiment") ?? "", path: p.string("path") ?? "outputs")
        }
        return Parameters(name: try p.required("name"), tags: p.map("tags") ?? [:], source: source, description: p.string("description"))
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        let job = context.job
        let tags = p.tags.merging(try await context.provenanceTags()) { $1 }.mapValues(JSONValue.string)
        // The v2 model URI, or nil for a v1 registration.
        let v2URI: String?
        switch p.source {
        case .job(let name, let path): v2URI = Self.jobOutputURI(job: name, path: path)
        case .url(let url): v2URI = context.api == .v2 ? url : nil
        case .run: v2URI = nil
        }
        if let uri = v2URI {
            return Output(id: .string(try await Self.registerV2(context.client, name: p.name, uri: uri, tags: tags, description: p.description)))
        }
        if job.attempts > 1,
           let done = try await context.client.models(name: p.name).first(where: { $0.value(at: "kvTags.mlhook_job")?.string == job.id }) {
            return Output(id: done["id"])
        }
        var body: JSONValue = ["name": .string(p.name), "mimeType": "application/octet-stream", "kvTags": .object(tags)]
        switch p.source {
        case .job: break
        case .url(let url):
            body = body.setting("url", .string(url))
        case .run(let run, let experiment, let path):
            body = body.setting("url", .string("aml://artifact/ExperimentRun/dcid.\(run)/\(path)"))
                .setting("runId", .string(run)).setting("experimentName", .string(experiment))
        }
        if let d = p.description { body = body.setting("description", .string(d)) }
        return Output(id: try await context.client.registerModel(body)["id"])
    }
}
