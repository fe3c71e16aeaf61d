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

    // MARK: v2 (ARM: code assets, command jobs, v2 models, online endpoints)

    /// The ARM id of a workspace child (`/subscriptions/…/workspaces/{ws}{path}`).
    func v2ID(_ path: String) -> String

    /// A folder's files as a code asset, uploaded once per content. - Returns: the code version's ARM id.
    func ensureCode(name: String, files: [CodeFile], blockSize: Int) async throws -> String

    /// Submits a command job under a caller-chosen name (the same name again is the same job).
    func submitJob(name: String, properties: JSONValue) async throws -> JSONValue

    /// A job as ARM answers it (`properties.status`).
    func job(name: String) async throws -> JSONValue

    /// Cancels a job and follows the operation to its end.
    func cancelJob(name: String) async throws

    /// A v2 model's versions, newest first.
    func modelVersions(name: String, includeArchived: Bool) async throws -> [JSONValue]

    /// Registers the next version of a v2 model.
    func registerModelV2(name: String, properties: JSONValue) async throws -> JSONValue

    /// Archives (or restores) a v2 model version.
    func archiveModelVersion(name: String, version: String, archived: Bool) async throws -> JSONValue

    /// Deletes a v2 model version; an absent one counts as deleted.
    func deleteModelVersion(name: String, version: String) async throws

    /// Scores a managed online endpoint with its key.
    func invokeEndpoint(_ name: String, body: JSONValue, deployment: String?) async throws -> JSONValue
}

extension HTTPAzureMLClient: AzureMLClient {}
