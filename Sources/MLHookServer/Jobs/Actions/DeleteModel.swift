import MLHookCore

/// `delete_model`: deletes a model version (`name:version`; v1 or v2 as `azureml.api` says); an absent one counts
/// as deleted, so a retry is harmless.
struct DeleteModel: JobAction {
    static let type = ActionType.deleteModel

    struct Parameters: Sendable { var id: String }

    struct Output: ActionOutput {
        var deleted: String
        var json: JSONValue { ["deleted": .string(deleted)] }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters { Parameters(id: try p.required("id")) }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        if context.api == .v2 {
            let parts = p.id.split(separator: ":", maxSplits: 1).map(String.init)
            try await context.client.deleteModelVersion(name: parts[0], version: parts.count > 1 ? parts[1] : "")
        } else {
            try await context.client.deleteModel(p.id)
        }
        return Output(deleted: p.id)
    }
}
