import AzureML
import MLHookCore

/// `scale_compute`: sets an AmlCompute's scale settings and waits for the update (a PATCH of the desired state,
/// so a retry has the same effect).
struct ScaleCompute: JobAction {
    static let type = ActionType.scaleCompute

    struct Parameters: Sendable {
        var name: String
        var minNodes: Int?
        var maxNodes: Int
        var idleSeconds: Int?
    }

    struct Output: ActionOutput {
        var compute: String
        var provisioningState: JSONValue?
        var maxNodeCount: JSONValue?
        var json: JSONValue { ["compute": .string(compute), "provisioningState": provisioningState ?? nil, "maxNodeCount": maxNodeCount ?? nil] }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        Parameters(name: try p.required("name"), minNodes: p.int("min_nodes"), maxNodes: p.int("max_nodes") ?? 0, idleSeconds: p.int("idle_seconds"))
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        let c = try await context.client.scaleCompute(p.name, minNodes: p.minNodes, maxNodes: p.maxNodes, idleSeconds: p.idleSeconds)
        let view = ComputeView(c)
        return Output(compute: p.name, provisioningState: view.provisioningState.map(JSONValue.string),
                      maxNodeCount: view.maxNodes.map { JSONValue.number(Double($0)) })
    }
}
