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
}
