import MLHookCore

/// `archive_model` (v2): archives a model version (`name:version`); archiving an archived one changes nothing,
/// so a retry is harmless.
struct ArchiveModel: JobAction {
    static let type = ActionType.archiveModel

    struct Parameters: Sendable {
        var name: String
        var version: String
    }

    struct Output: ActionOutput {
        var archived: String
        var json: JSONValue { ["archived": .string(archived)] }
    }

    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters {
        let id = try p.required("id")
        let parts = id.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw JobError("archive_model: id must be name:version, got \(id)") }
        return Parameters(name: parts[0], version: parts[1])
    }

    func perform(_ p: Parameters, in context: ActionContext) async throws -> Output {
        _ = try await context.client.archiveModelVersion(name: p.name, version: p.version, archived: true)
        return Output(archived: "\(p.name):\(p.version)")
    }
}
