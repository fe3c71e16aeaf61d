import Foundation
import MLHookCore

// The Azure ML shapes mlhook sends and reads, typed: the actions and `mlhook aml` build requests and read answers
// through these, so no `properties.…` key path lives outside the client (azureml-v2.md has the wire formats).

/// A v2 command job to submit (`PUT …/jobs/{name}`, its `properties`).
public struct CommandJobRequest: Sendable, Equatable {
    public var command: String
    /// The code asset's ARM id (`ensureCode`).
    public var codeID: String
    /// `azureml:NAME@latest`, a registry path or an ARM id.
    public var environment: String
    public var experiment: String
    public var displayName: String?
    /// A compute's ARM id (`v2ID("/computes/NAME")`); nil for serverless.
    public var computeID: String?
    /// Literal inputs (`${{inputs.NAME}}` in the command).
    public var inputs: [String: String] = [:]
    public var environmentVariables: [String: String] = [:]
    public var tags: [String: String] = [:]
    public var properties: [String: String] = [:]
    /// `limits.timeout`, in seconds.
    public var timeoutSeconds: Int?

    public init(command: String, codeID: String, environment: String, experiment: String) {
        self.command = command
        self.codeID = codeID
        self.environment = environment
        self.experiment = experiment
    }

    /// The job's `properties` as Azure ML takes them.
    public var json: JSONValue {
        var body: JSONValue = [
            "jobType": "Command", "command": .string(command), "codeId": .string(codeID), "environmentId": .string(environment),
            "experimentName": .string(experiment), "inputs": .object(inputs.mapValues { ["jobInputType": "literal", "value": .string($0)] }),
            "outputs": [:], "tags": .object(tags.mapValues(JSONValue.string)), "properties": .object(properties.mapValues(JSONValue.string)),
            "environmentVariables": .object(environmentVariables.mapValues(JSONValue.string)), "isArchived": false,
        ]
        if let displayName { body = body.setting("displayName", .string(displayName)) }
        if let computeID { body = body.setting("computeId", .string(computeID)) }
        if let timeoutSeconds { body = body.setting("limits", ["jobLimitsType": "Command", "timeout": .string("PT\(timeoutSeconds)S")]) }
        return body
    }
}

/// A v2 job as Azure ML answers `GET …/jobs/{name}`.
public struct CommandJobView: Sendable, Equatable {
    public var name: String
    /// NotStarted, Queued, Preparing, Running, Finalizing, Completed, Failed, Canceled, NotResponding, Paused, …
    public var status: String
    public var experiment: String?
    public var studioURL: String?
    public var startTime: String?
    public var endTime: String?
    public var errorMessage: String?
    public var tags: [String: String]

    public init(_ job: JSONValue) {
        let p = job["properties"] ?? [:]
        name = job["name"]?.string ?? ""
        status = p["status"]?.string ?? "Unknown"
        experiment = p["experimentName"]?.string
        studioURL = p.value(at: "services.Studio.endpoint")?.string
        startTime = p.value(at: "properties.StartTimeUtc")?.string
        endTime = p.value(at: "properties.EndTimeUtc")?.string
        errorMessage = p.value(at: "error.message")?.string ?? p.value(at: "error.error.message")?.string
        tags = (p["tags"]?.object ?? [:]).compactMapValues(\.string)
    }

    /// Completed, Failed or Canceled: nothing will change (NotResponding and Paused may go on).
    public var isTerminal: Bool { ["Completed", "Failed", "Canceled"].contains(status) }
}

/// A compute as Azure ML answers it (ARM `…/computes/{name}`).
public struct ComputeView: Sendable, Equatable {
    public var name: String
    public var provisioningState: String?
    public var location: String?
    public var currentNodes: Int?
    public var minNodes: Int?
    public var maxNodes: Int?

    public init(_ compute: JSONValue) {
        name = compute["name"]?.string ?? ""
        location = compute["location"]?.string
        provisioningState = compute.value(at: "properties.provisioningState")?.string
        let inner = compute.value(at: "properties.properties")
        currentNodes = inner?["currentNodeCount"]?.int
        minNodes = inner?.value(at: "scaleSettings.minNodeCount")?.int
        maxNodes = inner?.value(at: "scaleSettings.maxNodeCount")?.int
    }
}

/// A v2 model version as Azure ML answers it (`…/models/{name}/versions/{version}`).
public struct ModelVersionView: Sendable, Equatable {
    public var version: String
    public var createdAt: String?
    public var isArchived: Bool
    public var modelURI: String?
    public var tags: [String: String]

    public init(_ model: JSONValue) {
        version = model["name"]?.string ?? ""
        createdAt = model.value(at: "systemData.createdAt")?.string
        isArchived = model.value(at: "properties.isArchived")?.bool ?? false
        modelURI = model.value(at: "properties.modelUri")?.string
        tags = (model.value(at: "properties.tags")?.object ?? [:]).compactMapValues(\.string)
    }
}

/// Any ARM resource's name, state and location (a workspace, a resource group).
public struct ARMResourceView: Sendable, Equatable {
    public var name: String
    public var provisioningState: String?
    public var location: String?

    public init(_ resource: JSONValue) {
        name = resource["name"]?.string ?? ""
        provisioningState = resource.value(at: "properties.provisioningState")?.string
        location = resource["location"]?.string
    }
}
