import AsyncHTTPClient
import Foundation
import Logging
import MLHookCore
import NIOCore
import NIOHTTP1

/// The Azure ML REST client: ARM (resource groups, workspaces, computes), workspace discovery, run history
/// and execution, model management and scoring, over one shared `HTTPClient`.
///
/// Values come back as `JSONValue` documents in the service's own shape (shared/azureml-rest.md), so a field
/// the service adds is never lost.
public final class HTTPAzureMLClient: Sendable {
    /// Where and as whom it talks to Azure ML.
    public let settings: AzureMLSettings
    let transport: AzureMLTransport
    private let discovered = DiscoveryCache()

    /// Creates a client.
    /// - Parameter http: The shared HTTP client (`HTTPClient.shared` by default).
    public init(settings: AzureMLSettings, http: HTTPClient = .shared, logger: Logger = Logger(label: "mlhook.azureml")) {
        self.settings = settings
        transport = AzureMLTransport(http: http, tokens: TokenProvider(settings: settings, http: http), policy: settings.retry, logger: logger)
    }

    /// How many token requests were sent (single flight means one for many concurrent calls).
    public var tokenRequests: Int { get async { await transport.tokens.requests } }

    // MARK: ARM

    /// An ARM URL with `apiVersion` (default: `armAPIVersion`).
    func arm(_ path: String, query: String = "", apiVersion: String? = nil) -> String {
        "\(settings.armURL)\(path)?api-version=\(apiVersion ?? settings.armAPIVersion)" + (query.isEmpty ? "" : "&" + query)
    }

    /// A compute's URL: sent with the v2 api-version when the workspace is used as v2 (`settings.api`), the
    /// same resource and body either way.
    func computeURL(_ name: String?, query: String = "") -> String {
        arm(workspacePath(nil) + "/computes" + (name.map { "/\($0)" } ?? ""), query: query,
            apiVersion: settings.api == .v2 ? settings.v2APIVersion : nil)
    }

    /// Every item of a list, following `nextLink` (ARM and model management page the same way).
    func allPages(_ url: String) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var next: String? = url
        var seen = Set<String>()
        while let u = next, seen.insert(u).inserted {
            let page = try await transport.send(.GET, u).json
            items += page["value"]?.array ?? []
            next = page["nextLink"]?.string
        }
        return items
    }

    /// The subscription's resource groups (ARM).
    public func resourceGroups() async throws -> [JSONValue] {
        try await allPages(arm("/subscriptions/\(settings.subscriptionID)/resourceGroups"))
    }

    /// The resource group's Azure ML workspaces, following pages.
    public func workspaces() async throws -> [JSONValue] {
        try await allPages(arm("/subscriptions/\(settings.subscriptionID)/resourceGroups/\(settings.resourceGroup)/providers/Microsoft.MachineLearningServices/workspaces"))
    }

    /// A workspace (the configured one by default).
    public func workspace(_ name: String? = nil) async throws -> JSONValue {
        try await transport.send(.GET, arm(workspacePath(name))).json
    }

    func workspacePath(_ name: String?) -> String {
        "/subscriptions/\(settings.subscriptionID)/resourceGroups/\(settings.resourceGroup)/providers/Microsoft.MachineLearningServices/workspaces/\(name ?? settings.workspace)"
    }

    /// Creates or updates a workspace and follows the long-running operation to its end.
    public func createOrUpdateWorkspace(_ name: String, body: JSONValue) async throws -> JSONValue {
        let reply = try await transport.send(.PUT, arm(workspacePath(name)), body: .json(body))
        try await followOperation(reply)
        return try await workspace(name)
    }

    /// Deletes a workspace (a missing one counts as deleted).
    public func deleteWorkspace(_ name: String) async throws {
        let reply = try await transport.send(.DELETE, arm(workspacePath(name)), accept: [404])
        if reply.status != 404 { try await followOperation(reply) }
    }

    /// The workspace's computes, following pages.
    public func computes() async throws -> [JSONValue] { try await allPages(computeURL(nil)) }

    /// One compute, with its provisioning state and scale settings.
    public func compute(_ name: String) async throws -> JSONValue {
        try await transport.send(.GET, computeURL(name)).json
    }

    /// Creates (PUT) a compute and waits until its provisioning is terminal.
    public func createCompute(_ name: String, body: JSONValue) async throws -> JSONValue {
        _ = try await transport.send(.PUT, computeURL(name), body: .json(body))
        return try await waitForProvisioning(name)
    }

    /// Scales an AmlCompute (PATCH scaleSettings) and waits until the update is done.
    public func scaleCompute(_ name: String, minNodes: Int? = nil, maxNodes: Int, idleSeconds: Int? = nil) async throws -> JSONValue {
        var scale: JSONValue = ["maxNodeCount": .number(Double(maxNodes))]
        if let minNodes { scale = scale.setting("minNodeCount", .number(Double(minNodes))) }
        if let idleSeconds { scale = scale.setting("nodeIdleTimeBeforeScaleDown", .string("PT\(idleSeconds)S")) }
        _ = try await transport.send(.PATCH, computeURL(name), body: .json(["properties": ["scaleSettings": scale]]))
        return try await waitForProvisioning(name)
    }

    /// Deletes or detaches a compute (`underlyingResourceAction`); a missing one counts as deleted.
    public func deleteCompute(_ name: String, detach: Bool = false) async throws {
        let reply = try await transport.send(.DELETE, computeURL(name, query: "underlyingResourceAction=\(detach ? "Detach" : "Delete")"), accept: [404])
        if reply.status != 404 { try await followOperation(reply) }
    }

    /// Polls a compute until `provisioningState` is Succeeded, Failed or Canceled.
    func waitForProvisioning(_ name: String) async throws -> JSONValue {
        let deadline = Date().addingTimeInterval(settings.retry.deadline * 10)
        var delay = 0.2
        while true {
            let c = try await compute(name)
            switch c.value(at: "properties.provisioningState")?.string {
            case "Succeeded": return c
            case let s? where s == "Failed" || s == "Canceled":
                throw AzureMLError(code: .operationFailed, message: "compute \(name) provisioning ended \(s)")
            default:
                guard Date() < deadline else { throw AzureMLError(code: .timeout, message: "compute \(name) did not finish provisioning") }
                try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                delay = min(delay * 1.5, 10)
            }
        }
    }

    /// Follows an ARM long-running operation: `Azure-AsyncOperation` (status body) or `Location` (202 until
    /// done), honouring `Retry-After`.
    func followOperation(_ reply: AzureMLTransport.Reply) async throws {
        guard reply.status == 201 || reply.status == 202 else { return }
        let async = reply.header("Azure-AsyncOperation")
        let location = reply.header("Location")
        guard async != nil || location != nil else { return }
        let deadline = Date().addingTimeInterval(settings.retry.deadline * 10)
        var wait = reply.header("Retry-After").flatMap(AzureMLTransport.retryAfter) ?? 0.2
        while Date() < deadline {
            try await Task.sleep(for: .milliseconds(Int(min(wait, 30) * 1000)))
            if let async {
                let r = try await transport.send(.GET, async)
                switch r.json["status"]?.string {
                case "Succeeded": return
                case let s? where s == "Failed" || s == "Canceled":
                    throw AzureMLError(code: .operationFailed, status: r.status, serviceCode: r.json.value(at: "error.code")?.string,
                                       message: r.json.value(at: "error.message")?.string ?? "the operation ended \(s)")
                default: wait = r.header("Retry-After").flatMap(AzureMLTransport.retryAfter) ?? min(wait * 1.5, 10)
                }
            } else if let location {
                let r = try await transport.send(.GET, location, accept: [202])
                if r.status != 202 { return }
                wait = r.header("Retry-After").flatMap(AzureMLTransport.retryAfter) ?? min(wait * 1.5, 10)
            }
        }
        throw AzureMLError(code: .timeout, message: "the long-running operation did not finish in time")
    }

    // MARK: Discovery and the data plane

    /// The workspace's service URLs (GET its discoveryUrl without auth), cached per workspace.
    public func discovery() async throws -> JSONValue {
        if let cached = discovered.get(settings.workspacePath) { return cached }
        let ws = try await workspace()
        guard let url = ws.value(at: "properties.discoveryUrl")?.string else {
            throw AzureMLError(code: .invalidResponse, message: "the workspace has no discoveryUrl")
        }
        let answer = try await transport.send(.GET, url, authenticate: false).json
        discovered.set(settings.workspacePath, answer)
        return answer
    }

    func service(_ key: String) async throws -> String {
        if let override = settings.dataPlaneOverride { return override }
        guard let base = try await discovery()[key]?.string else {
            throw AzureMLError(code: .invalidResponse, message: "discovery has no \(key) URL")
        }
        return base
    }

    func dataPlane(_ key: String, _ prefix: String, _ path: String, query: [String] = []) async throws -> String {
        var q = query
        if let v = settings.dataPlaneAPIVersion { q.append("api-version=\(v)") }
        return try await service(key) + "/\(prefix)/v1.0" + settings.workspacePath + path + (q.isEmpty ? "" : "?" + q.joined(separator: "&"))
    }

    // MARK: Run history and execution

    /// All experiments (`experiments:query`, following `continuationToken`).
    public func experiments() async throws -> [JSONValue] {
        let url = try await dataPlane(settings.historyServiceKey, "history", "/experiments:query")
        var items: [JSONValue] = []
        var token: JSONValue = .null
        var seen = Set<String>()
        repeat {
            let page = try await transport.send(.POST, url, body: .json(token == .null ? [:] : ["continuationToken": token])).json
            items += page["value"]?.array ?? []
            token = page["continuationToken"] ?? .null
        } while token != .null && seen.insert(token.text).inserted
        return items
    }

    /// Experiments with the article's `GET …/experiments` form (one page; the SDK and swagger use `experiments:query`).
    public func experimentsByGet() async throws -> [JSONValue] {
        try await transport.send(.GET, try await dataPlane(settings.historyServiceKey, "history", "/experiments")).json["value"]?.array ?? []
    }

    /// Gets an experiment, creating it when it does not exist (as the SDK does).
    public func experiment(_ name: String) async throws -> JSONValue {
        let url = try await dataPlane(settings.historyServiceKey, "history", "/experiments/\(name)")
        let got = try await transport.send(.GET, url, accept: [404])
        if got.status != 404 { return got.json }
        return try await transport.send(.POST, url).json
    }

    /// Starts a run: multipart `projectZipFile` + `runDefinitionFile`, with a caller-chosen run id so that a
    /// retried start can never create a second run.
    public func startRun(experiment: String, zip: [UInt8], definition: JSONValue, runID: String) async throws -> String {
        let boundary = "mlhook-" + UUID().uuidString.lowercased()
        var body: [UInt8] = []
        func part(_ name: String, _ file: String, _ type: String, _ data: [UInt8]) {
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(file)\"\r\nContent-Type: \(type)\r\n\r\n".utf8)
            body += data + Array("\r\n".utf8)
        }
        part("runDefinitionFile", "definition.json", "application/json", Array(definition.text.utf8))
        part("projectZipFile", "project.zip", "application/zip", zip)
        body += Array("--\(boundary)--\r\n".utf8)
        let url = try await dataPlane(settings.historyServiceKey, "execution", "/experiments/\(experiment)/startrun", query: ["runId=\(runID)"])
        let reply = try await transport.send(.POST, url, body: .raw(body, contentType: "multipart/form-data; boundary=\(boundary)"))
        guard let id = reply.json["runId"]?.string else { throw AzureMLError(code: .invalidResponse, message: "startrun answered no runId") }
        return id
    }

    /// A run as run history answers it (`status`, `startTimeUtc`, `endTimeUtc`, `error`).
    public func run(experiment: String, runID: String) async throws -> JSONValue {
        try await transport.send(.GET, try await dataPlane(settings.historyServiceKey, "history", "/experiments/\(experiment)/runs/\(runID)")).json
    }

    /// A run's details, with its log files' URLs.
    public func runDetails(experiment: String, runID: String) async throws -> JSONValue {
        try await transport.send(.GET, try await dataPlane(settings.historyServiceKey, "history", "/experiments/\(experiment)/runs/\(runID)/details")).json
    }

    /// Asks the service to cancel a run.
    public func cancelRun(experiment: String, runID: String) async throws {
        _ = try await transport.send(.POST, try await dataPlane(settings.historyServiceKey, "execution", "/experiments/\(experiment)/runId/\(runID)/cancel"))
    }

    /// The run's statuses as they change, until a terminal one (Completed, Failed, Canceled), polling with
    /// backoff from `minInterval` to `maxInterval`.
    public func watch(experiment: String, runID: String, minInterval: TimeInterval = 0.2, maxInterval: TimeInterval = 10) -> AsyncThrowingStream<String, any Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var last: String?
                var interval = minInterval
                do {
                    while !Task.isCancelled {
                        let status = try await self.run(experiment: experiment, runID: runID)["status"]?.string ?? "Unknown"
                        if status != last {
                            continuation.yield(status)
                            last = status
                            interval = minInterval
                        } else {
                            interval = min(interval * 1.5, maxInterval)
                        }
                        if ["Completed", "Failed", "Canceled"].contains(status) { break }
                        try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: Models

    /// Models, following `nextLink` (optionally only those named `name`).
    public func models(name: String? = nil) async throws -> [JSONValue] {
        var query: [String] = []
        if let name { query.append("name=\(name)") }
        return try await allPages(try await dataPlane(settings.modelsServiceKey, "modelmanagement", "/models", query: query))
    }

    /// Registers a model version. - Returns: the model (`id` is `name:version`).
    public func registerModel(_ body: JSONValue) async throws -> JSONValue {
        try await transport.send(.POST, try await dataPlane(settings.modelsServiceKey, "modelmanagement", "/models"), body: .json(body)).json
    }

    /// One model version by id (`name:version`).
    public func model(_ id: String) async throws -> JSONValue {
        try await transport.send(.GET, try await dataPlane(settings.modelsServiceKey, "modelmanagement", "/models/\(Self.escape(id))")).json
    }

    /// Deletes a model; 404 or 204 mean it is already gone, which counts as done.
    public func deleteModel(_ id: String) async throws {
        _ = try await transport.send(.DELETE, try await dataPlane(settings.modelsServiceKey, "modelmanagement", "/models/\(Self.escape(id))"), accept: [404, 204])
    }

    /// Scores a deployed model: POST `{"data": [...]}` with the service key.
    public func score(uri: String, key: String, data: JSONValue) async throws -> JSONValue {
        try await transport.send(.POST, uri, body: .json(["data": data]), headers: [("Authorization", "Bearer \(key)")], authenticate: false).json
    }

    /// Fetches a URL the service handed out (log files: pre-signed, so no token is sent).
    public func download(_ url: String) async throws -> [UInt8] {
        try await transport.send(.GET, url, authenticate: false).body
    }

    /// Percent-encodes a path segment (`name:1` → `name%3A1`, as msrest does).
    static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }
}

/// Discovery answers per workspace.
final class DiscoveryCache: Sendable {
    private let state = SynchronizedBox<[String: JSONValue]>([:])
    func get(_ key: String) -> JSONValue? { state.read { $0[key] } }
    func set(_ key: String, _ value: JSONValue) { state.write { $0[key] = value } }
}
