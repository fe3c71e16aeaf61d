import MLHookCore

/// `invoke_endpoint` (v2): scores a managed online endpoint with its key (read from `listKeys` at each attempt, so
/// a regenerated key is used), optionally naming the deployment.
struct InvokeEndpoint: JobAction {
    static let type = ActionType.invokeEndpoint

    struct Parameters: Sendable {
        var endpoint: String
        var data: JSONValue
        var deployment: String?
    }

    /// The scoring answer as the model returned it.
    struct Output: ActionOutput {
        var json: JSONValue
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        guard let data = JSONValue(json: Array(try p.required("data").utf8)) else { throw JobError("invoke_endpoint data is not JSON") }
        return Parameters(endpoint: try p.required("endpoint"), data: data, deployment: p.string("deployment"))
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        Output(json: try await context.client.invokeEndpoint(p.endpoint, body: p.data, deployment: p.deployment))
    }
}
