import MLHookCore

/// `cancel_run`: asks Azure ML to cancel a run.
struct CancelRun: JobAction {
    static let type = ActionType.cancelRun

    struct Parameters: Sendable {
        var experiment: String
        var runID: String
    }

    struct Output: ActionOutput {
        var canceled: String
        var json: JSONValue { ["canceled": .string(canceled)] }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        Parameters(experiment: try p.required("experiment"), runID: try p.required("run_id"))
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        try await context.client.cancelRun(experiment: p.experiment, runID: p.runID)
        return Output(canceled: p.runID)
    }
}
