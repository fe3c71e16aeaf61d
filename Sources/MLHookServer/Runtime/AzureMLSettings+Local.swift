import AMLLocal
import AzureML

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
}
