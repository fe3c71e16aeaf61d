import MLHookCore

/// The Azure ML operations mlhook's actions and run watcher perform. `HTTPAzureMLClient` implements it over
/// REST (the real service or aml-local); tests may pass a `FakeAzureMLClient` that records calls.
///
/// Every method is idempotent where the service allows it: a start with the same `runID` is the same run,
/// deleting an absent model is done, scaling sets the desired state.
///
/// ```swift
/// let id = try await client.startRun(experiment: "train", zip: zip, definition: definition, runID: "mlhook_job_01")
/// let run = try await client.run(experiment: "train", runID: id)
/// ```
public protocol AzureMLClient: Sendable {
    /// Scales an AmlCompute (PATCH scaleSettings) and waits until the update is done.
    /// - Returns: The compute as the service answers it.
    /// - Throws: `AzureMLError`.
    func scaleCompute(_ name: String, minNodes: Int?, maxNodes: Int, idleSeconds: Int?) async throws -> JSONValue

    /// Starts a run from a zipped project and a run definition under a caller-chosen id.
    /// - Returns: The run id the service answered.
    func startRun(experiment: String, zip: [UInt8], definition: JSONValue, runID: String) async throws -> String

    /// A run as run history answers it (`status`, `startTimeUtc`, `endTimeUtc`, `error`).
    func run(experiment: String, runID: String) async throws -> JSONValue

    /// Asks the service to cancel a run.
    func cancelRun(experiment: String, runID: String) async throws

    /// Registered models, following pages (optionally only those named `name`).
    func models(name: String?) async throws -> [JSONValue]

    /// Registers a model version. - Returns: the registered model (its `id` is `name:version`).
    func registerModel(_ body: JSONValue) async throws -> JSONValue

    /// Deletes a model version; an absent one counts as deleted.
    func deleteModel(_ id: String) async throws

    /// Scores a deployed model: POST `{"data": …}` with the service key.
    func score(uri: String, key: String, data: JSONValue) async throws -> JSONValue
}

extension HTTPAzureMLClient: AzureMLClient {}
