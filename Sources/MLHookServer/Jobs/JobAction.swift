import Foundation
import AzureML
import MLHookCore
import Store

/// One Azure ML action a job performs, in the style of swift-jobs' job parameters: its parameters are decoded
/// once per attempt into a typed value, and `perform` returns a typed result that the job stores as JSON.
///
/// Actions are listed in one place, `ActionRegistry.action(for:)`, which switches over `ActionType`: adding a
/// case to `ActionType` does not compile until it has an action.
protocol JobAction: Sendable {
    /// The action's parameters, checked and typed.
    associatedtype Parameters: Sendable
    /// What a successful attempt produced.
    associatedtype Output: ActionOutput

    /// The configuration name of the action.
    static var type: ActionType { get }

    /// Whether a success leaves the job watching an Azure ML run (which the run watcher follows to its end)
    /// instead of succeeded.
    static var startsRun: Bool { get }

    /// Decodes and checks the rendered parameters. - Throws: `JobError` naming a missing or malformed one.
    static func parameters(_ p: ActionParameters) throws(JobError) -> Parameters

    /// Performs the action once. - Throws: `AzureMLError` (retried when retryable), `JobError` (fails the job).
    func perform(_ parameters: Parameters, in context: ActionContext) async throws -> Output

    /// For an action that starts a run: what to do once the run has ended, before the job is finished (the watcher
    /// calls it; again if that pass repeats after a crash, so it must find what it did before). - Returns: keys to
    /// add to the job's result.
    func onRunFinished(_ ended: RunEnding) async throws -> [String: JSONValue]
}

extension JobAction {
    static var startsRun: Bool { false }
    func onRunFinished(_ ended: RunEnding) async throws -> [String: JSONValue] { [:] }
}

/// A started run that has reached Completed, Failed or Canceled, as the watcher hands it to its action.
struct RunEnding: Sendable {
    let job: JobRecord
    /// The result the action recorded when it started the run.
    let started: JSONValue
    let run: RunReference
    let status: String
    /// The client of the workspace the run is in.
    let client: any AzureMLClient
}

/// What an action produced, as the JSON stored with the job and sent in its callbacks.
protocol ActionOutput: Sendable {
    var json: JSONValue { get }
}

/// A job's rendered parameters (decoded once per attempt from the JSON the planner stored).
struct ActionParameters: Sendable {
    let values: [String: ParameterValue]

    /// - Throws: `JobError` when the stored parameters are not a JSON object of parameter values.
    init(json: String) throws(JobError) {
        do { values = try JSONDecoder().decode([String: ParameterValue].self, from: Data(json.utf8)) } catch {
            throw JobError("the job's parameters cannot be read: \(error)")
        }
    }

    init(_ values: [String: ParameterValue]) { self.values = values }

    func string(_ key: String) -> String? { values[key]?.string }
    func int(_ key: String) -> Int? { values[key]?.int }
    func list(_ key: String) -> [String]? { if case .list(let l)? = values[key] { l } else { nil } }
    func map(_ key: String) -> [String: String]? { if case .map(let m)? = values[key] { m } else { nil } }

    /// A string parameter that must be there. - Throws: `JobError` naming it.
    func required(_ key: String) throws(JobError) -> String {
        guard let v = values[key]?.string else { throw JobError("parameter \(key) is missing") }
        return v
    }
}

/// An action with its types erased, as the worker pool runs it.
struct RegisteredAction: Sendable {
    let type: ActionType
    let startsRun: Bool
    /// Decodes the parameters and performs the action. - Returns: what it produced.
    let run: @Sendable (ActionParameters, ActionContext) async throws -> JSONValue
    /// The action's step after its run ended (`JobAction.onRunFinished`).
    let onRunFinished: @Sendable (RunEnding) async throws -> [String: JSONValue]

    init<A: JobAction>(_ action: A) {
        type = A.type
        startsRun = A.startsRun
        run = { p, context in try await action.perform(try A.parameters(p), in: context).json }
        onRunFinished = { ended in try await action.onRunFinished(ended) }
    }
}

/// Every action mlhook performs, by type.
enum ActionRegistry {
    /// The action of a type (exhaustive: every `ActionType` has one).
    static func action(for type: ActionType) -> RegisteredAction {
        switch type {
        case .startRun: RegisteredAction(StartRun())
        case .registerModel: RegisteredAction(RegisterModel())
        case .deleteModel: RegisteredAction(DeleteModel())
        case .scaleCompute: RegisteredAction(ScaleCompute())
        case .cancelRun: RegisteredAction(CancelRun())
        case .score: RegisteredAction(Score())
        case .submitJob: RegisteredAction(SubmitJob())
        case .archiveModel: RegisteredAction(ArchiveModel())
        case .invokeEndpoint: RegisteredAction(InvokeEndpoint())
        }
    }

    /// The names workers claim: every `ActionType`.
    static let names: Set<String> = Set(ActionType.allCases.map(\.rawValue))
}

/// A job that cannot be performed as planned: fails the job without retries, or, when `isRetryable` (another
/// service was down or throttled), is tried again with backoff like a retryable Azure ML error.
struct JobError: Error, CustomStringConvertible {
    let description: String
    var isRetryable = false
    init(_ d: String, retryable: Bool = false) {
        description = d
        isRetryable = retryable
    }
}
