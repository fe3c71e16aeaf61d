import AMLLocal
import AzureML
import Foundation
import MLHookCore
import Synchronization

extension AzureMLSettings {
    /// Settings that reach an `AMLLocal` server as its seeded service principal (its base URL serves both
    /// AAD and ARM). Read after the server is bound: the base URL is known only then.
    public static func local(_ aml: AMLLocal) -> AzureMLSettings {
        let c = aml.credentials
        var s = AzureMLSettings(credential: .servicePrincipal(tenantID: c.tenantID, clientID: c.clientID, secret: c.clientSecret, v2: false),
                                subscriptionID: c.subscriptionID, resourceGroup: c.resourceGroup, workspace: c.workspace)
        s.authorityURL = aml.settings.baseURL
        s.armURL = aml.settings.baseURL
        return s
    }

    /// The settings of `azureml.cloud`, with its client secret resolved: the one place both `mlhook serve` and
    /// `mlhook aml --config` turn the configuration into client settings.
    /// - Returns: nil when the block does not name a workspace and a service principal.
    /// - Throws: `ConfigError` when the client secret cannot be resolved.
    /// - Parameter api: The surface it is used as when the block does not say (`azureml.api`).
    public static func cloud(_ cloud: AzureMLCloudConfig, api: AzureMLConfig.API = .v1, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(ConfigError) -> AzureMLSettings? {
        guard let tenant = cloud.tenantID, let client = cloud.clientID, let ref = cloud.clientSecret, let sub = cloud.subscriptionID,
              let rg = cloud.resourceGroup, let ws = cloud.workspace else { return nil }
        let secret = try SecretResolver(environment: environment).resolve(ref, key: "azureml.cloud.client_secret").text
        var s = AzureMLSettings(credential: .servicePrincipal(tenantID: tenant, clientID: client, secret: secret, v2: false),
                                subscriptionID: sub, resourceGroup: rg, workspace: ws)
        s.authorityURL = cloud.authorityURL
        s.armURL = cloud.armURL
        s.armAPIVersion = cloud.armAPIVersion
        s.v2APIVersion = cloud.v2APIVersion
        s.api = cloud.api ?? api
        s.dataPlaneOverride = cloud.dataPlaneURL
        return s
    }
}

/// One Azure ML client for the life of the process, made on first use (local mode: once the embedded server is
/// bound and its address known), so its token and discovery caches are shared by every job.
final class SharedAzureMLClient: Sendable {
    private let make: @Sendable () throws -> any AzureMLClient
    private let made = Mutex<(any AzureMLClient)?>(nil)

    init(_ make: @escaping @Sendable () throws -> any AzureMLClient) { self.make = make }

    /// The client, made the first time.
    func get() throws -> any AzureMLClient {
        try made.withLock { current in
            if let current { return current }
            let client = try make()
            current = client
            return client
        }
    }
}
