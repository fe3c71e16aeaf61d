import Foundation
import Signing

/// The network a confined script gets (`azureml.local.network`).
public enum LocalNetwork: String, Sendable, Equatable, CaseIterable {
    /// Its own network namespace: its own loopback only.
    case isolated
    /// The machine's network, loopback included.
    case host
}

/// How aml-local confines the code it runs (`azureml.local.confinement`).
public enum LocalConfinement: String, Sendable, Equatable, CaseIterable {
    /// bubblewrap when it is installed and works here; otherwise unconfined, with a warning.
    case auto
    /// bubblewrap, or the server refuses to start.
    case required
    /// Unconfined (trusted code only).
    case off
}

/// What the kernel allows one run or scoring process of the embedded server (`azureml.local.limits`), in MiB where
/// a size.
public struct LocalRunLimits: Sendable, Equatable {
    /// Processes and threads at once.
    public var processes = 512
    /// Memory (a cgroup's limit where one can be made, else the address space).
    public var memoryMB = 4096
    /// The largest file it may write.
    public var fileMB = 2048
    /// Its `/tmp`, a tmpfs.
    public var tmpMB = 512
    /// Its run folder, measured while it runs.
    public var folderMB = 10_240
    public init() {}
}

/// `azureml:` settings.
public struct AzureMLConfig: Sendable, Equatable {
    /// `local`: mlhook starts the embedded Azure-ML-compatible server; `cloud`: the real endpoints.
    public enum Mode: String, Sendable, Equatable, CaseIterable { case local, cloud }

    public var mode = Mode.local
    /// Which surface actions that exist on both use (`register_model` with a url, `delete_model`): `v1` (the REST
    /// article's model management) or `v2` (ARM models). `submit_job`, `archive_model`, `invoke_endpoint` and
    /// `register_model.from_job` are v2 whatever this says; `start_run` and `from_run` are v1.
    public enum API: String, Sendable, Equatable, CaseIterable { case v1, v2 }
    public var api = API.v1
    /// Where the embedded server keeps its state.
    public var localDataDirectory = ".mlhook/aml-local"
    /// Where the embedded server listens (port 0: any free port).
    public var localHost = "127.0.0.1"
    public var localPort = 0
    /// How the embedded server confines the scripts it runs: `required` (default: bubblewrap, or no start), `auto`
    /// (bubblewrap when it works, else unconfined with a warning), `off`.
    public var localConfinement = LocalConfinement.required
    /// What the kernel allows each run and scoring process of the embedded server (`azureml.local.limits`).
    public var localLimits = LocalRunLimits()
    /// The network a confined run gets: `isolated` (default: its own loopback only) or `host`.
    public var localNetwork = LocalNetwork.isolated
    /// Days a finished run's project (code, outputs, zip) is kept by the embedded server; its record and logs stay.
    public var localRunRetentionDays = 30
    /// The real service, for `mode: cloud`: the default workspace.
    public var cloud = AzureMLCloudConfig()
    /// More workspaces by name (`azureml.workspaces`), each a block like `cloud` with its own `api`; an action
    /// picks one with `workspace: NAME`.
    public var workspaces: [String: AzureMLCloudConfig] = [:]

    /// The surface (v1 or v2) of a workspace: its own `api`, else `azureml.api`.
    public func api(workspace name: String?) -> API { name.flatMap { workspaces[$0]?.api } ?? api }
    public init() {}
}

/// `azureml.cloud:` settings: the workspace and the service principal.
public struct AzureMLCloudConfig: Sendable, Equatable {
    public var tenantID: String?
    public var clientID: String?
    public var clientSecret: SecretReference?
    /// Where `client_secret` stands in the file (0: unknown), for errors about resolving it.
    public var clientSecretLine: SourceLine = 0
    public var subscriptionID: String?
    public var resourceGroup: String?
    public var workspace: String?
    public var authorityURL = "https://login.microsoftonline.com"
    public var armURL = "https://management.azure.com"
    public var armAPIVersion = "2019-11-01"
    /// api-version of the v2 routes (codes, jobs, v2 models, online endpoints).
    public var v2APIVersion = "2025-12-01"
    /// Data-plane calls (run history, execution, models) go here instead of the workspace's discovery answer
    /// (private endpoints, proxies).
    public var dataPlaneURL: String?
    /// For a workspace of `azureml.workspaces`: v1 or v2 (nil: `azureml.api`).
    public var api: AzureMLConfig.API?
    public init() {}
}
