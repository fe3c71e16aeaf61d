import AzureML
import Foundation
import MLHookCore
import Synchronization

/// An `AzureMLClient` that records every call and answers from a script, for tests of actions and the job
/// engine that need no aml-local. Unscripted calls answer a plausible success.
///
/// ```swift
/// let fake = FakeAzureMLClient()
/// fake.script("scaleCompute", [.failure(AzureMLError(code: .throttled, status: 429, message: "slow down"))])
/// ```
public final class FakeAzureMLClient: AzureMLClient {
    /// One recorded call: its operation and arguments as text.
    public struct Call: Sendable, Equatable {
        public let operation: String
        public let arguments: [String]
    }

    private struct State {
        var calls: [Call] = []
        var scripts: [String: [Result<JSONValue, any Error>]] = [:]
        var models: [JSONValue] = []
        var runs: [String: JSONValue] = [:]
        var delays: [String: Duration] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    /// Every call so far, in order.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// The calls of one operation.
    public func calls(_ operation: String) -> [Call] { calls.filter { $0.operation == operation } }

    /// Queues answers for an operation, used one per call before the default answer.
    public func script(_ operation: String, _ answers: [Result<JSONValue, any Error>]) {
        state.withLock { $0.scripts[operation, default: []] += answers }
    }

    /// Makes every call of an operation take `duration` before it answers (a compute scale that waits for its nodes).
    public func delay(_ operation: String, by duration: Duration) {
        state.withLock { $0.delays[operation] = duration }
    }

    private func pause(_ operation: String) async throws {
        if let d = state.withLock({ $0.delays[operation] }) { try await Task.sleep(for: d) }
    }

    /// Sets the status a run reports to `run(experiment:runID:)`.
    public func setRun(_ runID: String, status: String) {
        state.withLock { $0.runs[runID] = ["runId": .string(runID), "status": .string(status)] }
    }

    private func record(_ operation: String, _ arguments: [String], default answer: () -> JSONValue) throws -> JSONValue {
        let scripted: Result<JSONValue, any Error>? = state.withLock { s in
            s.calls.append(Call(operation: operation, arguments: arguments))
            guard var queue = s.scripts[operation], !queue.isEmpty else { return nil }
            let next = queue.removeFirst()
            s.scripts[operation] = queue
            return next
        }
        if let scripted { return try scripted.get() }
        return answer()
    }

    public func scaleCompute(_ name: String, minNodes: Int?, maxNodes: Int, idleSeconds: Int?) async throws -> JSONValue {
        // Recorded when the call starts, answered after its delay.
        let answer = Result {
            try record("scaleCompute", [name, minNodes.map(String.init) ?? "-", String(maxNodes), idleSeconds.map(String.init) ?? "-"]) {
                ["name": .string(name), "properties": ["provisioningState": "Succeeded",
                                                       "properties": ["scaleSettings": ["maxNodeCount": .number(Double(maxNodes))]]]]
            }
        }
        try await pause("scaleCompute")
        return try answer.get()
    }

    public func startRun(experiment: String, zip: [UInt8], definition: JSONValue, runID: String) async throws -> String {
        let answer = try record("startRun", [experiment, runID, definition.text]) { ["runId": .string(runID)] }
        state.withLock { s in if s.runs[runID] == nil { s.runs[runID] = ["runId": .string(runID), "status": "Running"] } }
        return answer["runId"]?.string ?? runID
    }

    public func run(experiment: String, runID: String) async throws -> JSONValue {
        let current = state.withLock { $0.runs[runID] }
        return try record("run", [experiment, runID]) { current ?? ["runId": .string(runID), "status": "NotStarted"] }
    }

    public func cancelRun(experiment: String, runID: String) async throws {
        _ = try record("cancelRun", [experiment, runID]) { nil }
        state.withLock { $0.runs[runID] = ["runId": .string(runID), "status": "Canceled"] }
    }

    public func models(name: String?) async throws -> [JSONValue] {
        let all = state.withLock { $0.models }
        let answer = try record("models", [name ?? "-"]) { .array(all.filter { name == nil || $0["name"]?.string == name }) }
        return answer.array ?? []
    }

    public func registerModel(_ body: JSONValue) async throws -> JSONValue {
        let name = body["name"]?.string ?? "model"
        let version = state.withLock { s in s.models.filter { $0["name"]?.string == name }.count + 1 }
        let model = body.setting("id", .string("\(name):\(version)")).setting("version", .number(Double(version)))
        // Registered once the call went through, even when the script then loses the answer (a lost response).
        state.withLock { $0.models.append(model) }
        return try record("registerModel", [body.text]) { model }
    }

    public func deleteModel(_ id: String) async throws {
        _ = try record("deleteModel", [id]) { nil }
        state.withLock { $0.models.removeAll { $0["id"]?.string == id } }
    }

    public func score(uri: String, key: String, data: JSONValue) async throws -> JSONValue {
        try record("score", [uri, data.text]) { ["result": .array([.number(1)])] }
    }

    // MARK: v2

    public func v2ID(_ path: String) -> String { "/subscriptions/fake/resourceGroups/fake/providers/Microsoft.MachineLearningServices/workspaces/fake" + path }

    public func ensureCode(name: String, files: [CodeFile], blockSize: Int) async throws -> String {
        let hash = CodeFile.contentHash(files)
        return try record("ensureCode", [name, hash] + files.map(\.path)) { .string(v2ID("/codes/\(name)/versions/\(hash.prefix(32))")) }.string ?? ""
    }

    /// Sets the status a v2 job reports to `job(name:)`.
    public func setJob(_ name: String, status: String) {
        state.withLock { s in
            let current = s.runs["v2:" + name] ?? ["name": .string(name), "properties": [:]]
            s.runs["v2:" + name] = current.setting(path: "properties.status", .string(status))
        }
    }

    public func submitJob(name: String, properties: JSONValue) async throws -> JSONValue {
        // Submitted once the call went through, even when the script then loses the answer or refuses the retry.
        state.withLock { s in if s.runs["v2:" + name] == nil { s.runs["v2:" + name] = ["name": .string(name), "properties": properties.setting("status", "Running")] } }
        return try record("submitJob", [name, properties.text]) { ["name": .string(name), "properties": properties.setting("status", "NotStarted")] }
    }

    public func job(name: String) async throws -> JSONValue {
        let current = state.withLock { $0.runs["v2:" + name] }
        return try record("job", [name]) { current ?? ["name": .string(name), "properties": ["status": "NotStarted"]] }
    }

    public func cancelJob(name: String) async throws {
        _ = try record("cancelJob", [name]) { nil }
        setJob(name, status: "Canceled")
    }

    public func modelVersions(name: String, includeArchived: Bool) async throws -> [JSONValue] {
        let all = state.withLock { $0.models.filter { $0["_v2name"]?.string == name } }
        return try record("modelVersions", [name]) { .array(all.reversed()) }.array ?? []
    }

    public func registerModelV2(name: String, properties: JSONValue) async throws -> JSONValue {
        let version = state.withLock { s in s.models.filter { $0["_v2name"]?.string == name }.count + 1 }
        let model: JSONValue = ["_v2name": .string(name), "name": .string(String(version)), "properties": properties,
                                "id": .string(v2ID("/models/\(name)/versions/\(version)"))]
        state.withLock { $0.models.append(model) }
        return try record("registerModelV2", [name, properties.text]) { model }
    }

    public func archiveModelVersion(name: String, version: String, archived: Bool) async throws -> JSONValue {
        try record("archiveModelVersion", [name, version, String(archived)]) { ["name": .string(version), "properties": ["isArchived": .bool(archived)]] }
    }

    public func deleteModelVersion(name: String, version: String) async throws {
        _ = try record("deleteModelVersion", [name, version]) { nil }
        state.withLock { $0.models.removeAll { $0["_v2name"]?.string == name && $0["name"]?.string == version } }
    }

    public func invokeEndpoint(_ name: String, body: JSONValue, deployment: String?) async throws -> JSONValue {
        try record("invokeEndpoint", [name, body.text, deployment ?? "-"]) { ["result": .array([.number(1)])] }
    }
}
