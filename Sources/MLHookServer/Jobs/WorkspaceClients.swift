import AzureML
import Foundation
import MLHookCore
import Synchronization

/// The Azure ML client of each workspace an action may name (`workspace: NAME`, one of `azureml.workspaces`):
/// made on first use from the configuration in force, kept while its block is unchanged (so its token and
/// discovery caches are shared), made again after a reload changed it.
public final class WorkspaceClients: Sendable {
    private let made = Mutex<[String: (config: AzureMLCloudConfig, client: any AzureMLClient)]>([:])
    private let environment: [String: String]
    private let make: @Sendable (AzureMLSettings) -> any AzureMLClient

    public init(environment: [String: String] = ProcessInfo.processInfo.environment,
                make: @escaping @Sendable (AzureMLSettings) -> any AzureMLClient = { HTTPAzureMLClient(settings: $0) }) {
        self.environment = environment
        self.make = make
    }

    /// The client of workspace `name` in `config`.
    /// - Throws: `JobError` when the configuration names no such workspace or its secret cannot be resolved.
    func client(_ name: String, config: MLHookConfig) throws -> any AzureMLClient {
        guard let block = config.azureml.workspaces[name] else {
            throw JobError("no workspace \(name) in azureml.workspaces (they are \(config.azureml.workspaces.keys.sorted().joined(separator: ", ")))")
        }
        if let known = made.withLock({ $0[name] }), known.config == block { return known.client }
        let settings: AzureMLSettings
        do {
            guard let s = try AzureMLSettings.cloud(block, api: config.azureml.api, environment: environment) else { throw JobError("azureml.workspaces.\(name) is incomplete") }
            settings = s
        } catch let e as ConfigError {
            throw JobError("azureml.workspaces.\(name): \(e.description)")
        }
        let client = make(settings)
        made.withLock { $0[name] = (block, client) }
        return client
    }
}
