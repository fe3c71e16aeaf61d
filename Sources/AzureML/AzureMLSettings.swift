import Foundation
import MLHookCore

/// Where and as whom the client talks to Azure ML. Every base URL is configurable, so sovereign clouds and
/// the local server (`mlhook aml-local`) work with the same code.
public struct AzureMLSettings: Sendable, Equatable {
    /// How the client authenticates.
    public enum Credential: Sendable, Equatable {
        /// Service-principal client credentials (AAD v1 `resource` or v2 `scope`).
        case servicePrincipal(tenantID: String, clientID: String, secret: String, v2: Bool)
        /// A bearer token used as is (local use, tests).
        case staticToken(String)
    }

    /// How the client authenticates.
    public var credential: Credential
    /// The workspace's subscription.
    public var subscriptionID: String
    /// The workspace's resource group.
    public var resourceGroup: String
    /// The workspace name.
    public var workspace: String
    /// AAD authority, such as https://login.microsoftonline.com.
    public var authorityURL = "https://login.microsoftonline.com"
    /// ARM, such as https://management.azure.com.
    public var armURL = "https://management.azure.com"
    /// The token audience.
    public var resource = "https://management.azure.com/"
    /// When set, data-plane calls go here instead of the workspace's discovery answer.
    public var dataPlaneOverride: String?
    /// The discovery key used for models: `modelmanagement` (the SDK) or `api` (the article).
    public var modelsServiceKey = "modelmanagement"
    /// The discovery key used for run history and execution: `history` (the SDK) or `api` (the article).
    public var historyServiceKey = "history"
    /// api-version sent to ARM.
    public var armAPIVersion = "2019-11-01"
    /// Which Azure ML surface the workspace is used as: with v2, computes are addressed with `v2APIVersion`.
    public var api = AzureMLConfig.API.v1
    /// api-version sent to the v2 routes (codes, jobs, v2 models, online endpoints): the newest stable with full
    /// specs in late 2026 (shared/azureml-v2.md).
    public var v2APIVersion = "2025-12-01"
    /// api-version sent on the data plane (none by default, as the SDK does).
    public var dataPlaneAPIVersion: String?
    /// Which failures are retried, and how.
    public var retry = RetryPolicy()

    public init(credential: Credential, subscriptionID: String, resourceGroup: String, workspace: String) {
        self.credential = credential
        self.subscriptionID = subscriptionID
        self.resourceGroup = resourceGroup
        self.workspace = workspace
    }

    /// `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.MachineLearningServices/workspaces/{w}`.
    public var workspacePath: String {
        "/subscriptions/\(subscriptionID)/resourceGroups/\(resourceGroup)/providers/Microsoft.MachineLearningServices/workspaces/\(workspace)"
    }
}

/// Which failures are retried, how often, and for how long in all.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts per call, the first included.
    public var maxAttempts = 4
    /// Backoff before attempt n+1 is base·2ⁿ with full jitter, capped; `Retry-After` wins when larger.
    public var baseDelay: TimeInterval = 0.5
    /// The longest backoff between two attempts.
    public var maxDelay: TimeInterval = 30
    /// No attempt starts after this much time since the first.
    public var deadline: TimeInterval = 120
    /// Per-attempt timeout.
    public var attemptTimeout: TimeInterval = 60

    public init() {}
}
