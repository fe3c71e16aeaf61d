import MLHookCore

/// `register_model`: registers a model version from a run's output or a URL, with provenance tags (rule,
/// event, job, delivery, repository, commit). A retried job first looks for the version its earlier attempt
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
        }
    }

    struct Output: ActionOutput {
        var id: JSONValue?
        var json: JSONValue { ["id": id ?? nil] }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        let source: Parameters.Source
        if let url = p.string("url") {
            source = .url(url)
        } else {
            source = .run(id: try p.required("from_run"), experiment: p.string("experiment") ?? "", path: p.string("path") ?? "outputs")
        }
        return Parameters(name: try p.required("name"), tags: p.map("tags") ?? [:], source: source, description: p.string("description"))
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        let job = context.job
        var tags = p.tags.mapValues(JSONValue.string)
        tags["mlhook_rule"] = .string(job.rule)
        tags["mlhook_event"] = .string(job.eventID)
        tags["mlhook_job"] = .string(job.id)
        if job.attempts > 1,
           let done = try await context.client.models(name: p.name).first(where: { $0.value(at: "kvTags.mlhook_job")?.string == job.id }) {
            return Output(id: done["id"])
        }
        if let event = try await context.event() {
            tags["mlhook_delivery_id"] = .string(event.stored.summary.deliveryID)
            if let e = event.normalized {
                if let repo = e.repository?.fullName { tags["mlhook_repository"] = .string(repo) }
                if let sha = e.after, !sha.isEmpty { tags["mlhook_commit"] = .string(sha) }
            }
        }
        var body: JSONValue = ["name": .string(p.name), "mimeType": "application/octet-stream", "kvTags": .object(tags)]
        switch p.source {
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
