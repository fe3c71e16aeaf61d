import MLHookCore

/// `score`: posts `{"data": …}` to a deployed model's scoring URI with the rule's key (resolved at each
/// attempt, so a rotated key is used).
struct Score: JobAction {
    static let type = ActionType.score

    struct Parameters: Sendable {
        var uri: String
        var data: JSONValue
    }

    /// The scoring answer as the model returned it.
    struct Output: ActionOutput {
        var json: JSONValue
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        let uri = try p.required("uri")
        guard let data = JSONValue(json: Array(try p.required("data").utf8)) else { throw JobError("score data is not JSON") }
        return Parameters(uri: uri, data: data)
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        guard let key = try context.secret("key") else { throw JobError("the rule's score action has no key") }
        return Output(json: try await context.client.score(uri: p.uri, key: key.text, data: p.data))
    }
}
