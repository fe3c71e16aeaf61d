import MLHookCore

/// `delete_model`: deletes a model version; an absent one counts as deleted, so a retry is harmless.
struct DeleteModel: JobAction {
    static let type = ActionType.deleteModel

    struct Parameters: Sendable { var id: String }

    struct Output: ActionOutput {
        var deleted: String
        var json: JSONValue { ["deleted": .string(deleted)] }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters { Parameters(id: try p.required("id")) }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        try await context.client.deleteModel(p.id)
        return Output(deleted: p.id)
    }
}
