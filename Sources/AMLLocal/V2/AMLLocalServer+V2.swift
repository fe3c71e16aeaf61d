import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore
import Signing

/// The v2 surface (shared/azureml-v2.md): code assets, command jobs, v2 models, environments and managed online
/// endpoints under the workspace's ARM path, with any api-version (the official SDK sends several per operation).
///
/// A v2 job is a run record like a v1 run (same executor, run history, cancel and logs), with its submitted
/// properties kept under `_v2`; the command really runs with `sh -c` in a copy of the code asset, `python` being
/// the server's interpreter.
extension AMLLocalServer {
    /// The workspace children this file serves.
    static let v2Kinds: Set<String> = ["codes", "jobs", "models", "environments", "onlineendpoints", "datastores"]

    /// A workspace's identity on the v2 routes.
    struct Workspace {
        /// The store scope (`sub/rg/ws`, lowercased).
        let key: String
        /// `/subscriptions/…/workspaces/{ws}` as the client spelled it.
        let path: String
        let name: String
    }

    func v2(_ call: Call, ws: Workspace, rest: [String]) throws(AMLError) -> Response {
        switch rest[0].lowercased() {
        case "codes": return try codes(call, ws: ws, rest: rest)
        case "jobs": return try jobs(call, ws: ws, rest: rest)
        case "models": return try modelsV2(call, ws: ws, rest: rest)
        case "environments": return try environments(call, ws: ws, rest: rest)
        case "onlineendpoints": return try onlineEndpoints(call, ws: ws, rest: rest)
        case "datastores": return try datastores(call, ws: ws, rest: rest)
        default: throw AMLError(.notFound, "NotFound", "No such ARM resource.")
        }
    }

    /// ARM's envelope for a child resource, with `systemData`.
    static func resource(id: String, name: String, type: String, properties: JSONValue, created: String?, extra: [String: JSONValue] = [:]) -> JSONValue {
        var r: [String: JSONValue] = [
            "id": .string(id), "name": .string(name), "type": .string("Microsoft.MachineLearningServices/workspaces/" + type),
            "properties": properties,
            "systemData": ["createdAt": .string(created ?? now()), "createdBy": "aml-local", "createdByType": "Application",
                           "lastModifiedAt": .string(now()), "lastModifiedBy": "aml-local", "lastModifiedByType": "Application"],
        ]
        for (k, v) in extra { r[k] = v }
        return .object(r)
    }

    static func list(_ values: [JSONValue]) -> Response { json(.ok, ["value": .array(values), "nextLink": nil]) }

    static func checkName(_ name: String, _ what: String) throws(AMLError) {
        guard case .success = ActionSchema.check(.name(max: 255, dots: true), name) else {
            throw AMLError(.badRequest, "UserError", "\(what) \"\(name.prefix(80))\" must be letters, digits, -, _ and . (at most 255, starting with a letter or digit).")
        }
    }

    // MARK: Code assets

    func codes(_ call: Call, ws: Workspace, rest: [String]) throws(AMLError) -> Response {
        let r = rest.map { $0.lowercased() }
        switch (call.method, r.count) {
        case (.get, 1):
            var names: [String: JSONValue] = [:]
            for (_, c) in try guardStore({ try store.names("code", ws.key) }) {
                if let n = c["_container"]?.string { names[n] = Self.resource(id: "\(ws.path)/codes/\(n)", name: n, type: "codes", properties: ["isArchived": false], created: nil) }
            }
            return Self.list(names.keys.sorted().compactMap { names[$0] })
        case (.get, 3) where r[2] == "versions":
            let all = try guardStore { try store.names("code", ws.key) }.map(\.1)
            // The SDK looks a hash up under a fresh random name: a match counts in any name.
            if let hash = call.query["hash"] {
                return Self.list(all.filter { $0.value(at: "properties.properties.hash_sha256")?.string == hash }.map(\.publicView))
            }
            return Self.list(all.filter { $0["_container"]?.string?.lowercased() == r[1] }.map(\.publicView))
        case (.get, 4) where r[2] == "versions":
            guard let c = try guardStore({ try store.get("code", ws.key, "\(rest[1]):\(rest[3])") }) else { throw AMLError.notFound("Code \(rest[1]):\(rest[3])") }
            return Self.json(.ok, c.publicView)
        case (.post, 5) where r[2] == "versions" && r[4] == "startpendingupload":
            try Self.checkName(rest[1], "The code name")
            let container = UUID().uuidString.lowercased()
            let blobURI = "\(call.base)/blob/local/\(container)"
            return Self.json(.ok, [
                "blobReferenceForConsumption": [
                    "blobUri": .string(blobURI), "storageAccountArmId": .string("/subscriptions/local/resourceGroups/local/providers/Microsoft.Storage/storageAccounts/local"),
                    "credential": ["credentialType": "SAS", "sasUri": .string(blobURI + "?" + containerSAS(account: "local", container: container))],
                ],
                "pendingUploadId": .string(UUID().uuidString.lowercased()), "pendingUploadType": "TemporaryBlobReference",
            ])
        case (.put, 4) where r[2] == "versions":
            try Self.checkName(rest[1], "The code name")
            try Self.checkName(rest[3], "The code version")
            let body = try call.json()
            guard let uri = body.value(at: "properties.codeUri")?.string, !uri.isEmpty else {
                throw AMLError(.badRequest, "UserError", "properties.codeUri is required.")
            }
            guard let local = localPath(ofBlobURL: uri), FileManager.default.fileExists(atPath: local.path) else {
                throw AMLError(.badRequest, "UserError", "properties.codeUri must name files uploaded to aml-local's blob service (startPendingUpload); \(uri.prefix(200)) is not there.")
            }
            let key = "\(rest[1]):\(rest[3])"
            let existing = try guardStore({ try store.get("code", ws.key, key) })
            let props = (body["properties"] ?? [:]).setting("provisioningState", "Succeeded").setting("isArchived", body.value(at: "properties.isArchived") ?? false)
            let c = Self.resource(id: "\(ws.path)/codes/\(rest[1])/versions/\(rest[3])", name: rest[3], type: "codes/versions", properties: props,
                                  created: existing?.value(at: "systemData.createdAt")?.string)
                .setting("_container", .string(rest[1])).setting("_path", .string(local.path))
            try guardStore { try store.put("code", ws.key, key, c) }
            return Self.json(existing == nil ? .created : .ok, c.publicView)
        default:
            throw AMLError(.notFound, "NotFound", "No route for \(call.method) codes/\(rest.dropFirst().joined(separator: "/")).")
        }
    }

    /// The store key (`{name}:{version}`) of a versioned asset from its id: an ARM id (`…/{kind}/{n}/versions/{v}`,
    /// optionally `azureml:`-prefixed) or `azureml:{n}:{v}`.
    /// - Parameter kind: The id's collection segment, `codes` or `models`.
    static func assetKey(_ id: String, kind: String) -> String? {
        let trimmed = id.hasPrefix("azureml:") ? String(id.dropFirst("azureml:".count)) : id
        let parts = trimmed.split(separator: "/").map(String.init)
        if let i = parts.firstIndex(where: { $0.lowercased() == kind }), parts.count == i + 4, parts[i + 2].lowercased() == "versions" {
            return "\(parts[i + 1]):\(parts[i + 3])"
        }
        return !trimmed.contains("/") && trimmed.split(separator: ":").count == 2 ? trimmed : nil
    }

    /// A code asset's local folder from its id (`assetKey`).
    func codeDirectory(_ id: String, ws: Workspace) throws(AMLError) -> String {
        guard let key = Self.assetKey(id, kind: "codes"), let c = try guardStore({ try store.get("code", ws.key, key) }),
              let path = c["_path"]?.string else {
            throw AMLError(.badRequest, "UserError", "Code \(id.prefix(200)) was not found in this workspace.")
        }
        guard let folder = storedFolder(path) else {
            throw AMLError(.badRequest, "UserError", "Code \(id.prefix(200)) leaves aml-local's blob store: refused.")
        }
        return folder
    }

    // MARK: Models (v2)

    func modelsV2(_ call: Call, ws: Workspace, rest: [String]) throws(AMLError) -> Response {
        let r = rest.map { $0.lowercased() }
        let all = { () throws(AMLError) -> [JSONValue] in try self.guardStore { try self.store.list("model2", ws.key) } }
        switch (call.method, r.count) {
        case (.get, 1):
            var latest: [String: JSONValue] = [:]
            let models = try all()
            for m in models { if let n = m["_container"]?.string { latest[n.lowercased()] = modelContainer(n, ws: ws, versions: models) } }
            return Self.list(latest.keys.sorted().compactMap { latest[$0] })
        case (.get, 2):
            let models = try all()
            guard models.contains(where: { $0["_container"]?.string?.lowercased() == r[1] }) else { throw AMLError.notFound("Model \(rest[1])") }
            return Self.json(.ok, modelContainer(rest[1], ws: ws, versions: models))
        case (.get, 3) where r[2] == "versions":
            var versions = try all().filter { $0["_container"]?.string?.lowercased() == r[1] }
            switch call.query["listviewtype"]?.lowercased() {
            case "all": break
            case "archivedonly": versions = versions.filter { $0.value(at: "properties.isArchived")?.bool == true }
            default: versions = versions.filter { $0.value(at: "properties.isArchived")?.bool != true }
            }
            if let version = call.query["version"] { versions = versions.filter { $0["name"]?.string == version } }
            if let tag = call.query["tags"] { versions = versions.filter { $0.value(at: "properties.tags")?[tag] != nil } }
            if (call.query["$orderby"] ?? "").lowercased().hasSuffix("desc") { versions.reverse() }
            if let top = call.query["$top"].flatMap(Int.init), top >= 0 { versions = Array(versions.prefix(top)) }
            return Self.list(versions.map(\.publicView))
        case (.get, 4) where r[2] == "versions":
            guard let m = try guardStore({ try store.get("model2", ws.key, "\(rest[1]):\(rest[3])") }) else { throw AMLError.notFound("Model \(rest[1]):\(rest[3])") }
            return Self.json(.ok, m.publicView)
        case (.put, 4) where r[2] == "versions":
            try Self.checkName(rest[1], "The model name")
            try Self.checkName(rest[3], "The model version")
            let body = try call.json()
            guard let uri = body.value(at: "properties.modelUri")?.string, !uri.isEmpty else {
                throw AMLError(.badRequest, "UserError", "properties.modelUri is required (such as azureml://jobs/{job}/outputs/artifacts/paths/model/).")
            }
            let local = try localPath(ofAsset: uri, ws: ws)
            let key = "\(rest[1]):\(rest[3])"
            let existing = try guardStore({ try store.get("model2", ws.key, key) })
            var props = body["properties"] ?? [:]
            // The SDK reads flavors unconditionally (1.35.2 crashes on null).
            if props["flavors"] == nil || props["flavors"] == .null { props = props.setting("flavors", [:]) }
            props = props.setting("modelType", props["modelType"] ?? "custom_model").setting("isArchived", props["isArchived"] ?? false)
                .setting("provisioningState", "Succeeded").setting("tags", props["tags"] ?? [:]).setting("properties", props["properties"] ?? [:])
            var m = Self.resource(id: "\(ws.path)/models/\(rest[1])/versions/\(rest[3])", name: rest[3], type: "models/versions", properties: props,
                                  created: existing?.value(at: "systemData.createdAt")?.string)
                .setting("_container", .string(rest[1]))
            if let local { m = m.setting("_path", .string(local.path)) }
            try guardStore { try store.put("model2", ws.key, key, m) }
            return Self.json(existing == nil ? .created : .ok, m.publicView)
        case (.delete, 4) where r[2] == "versions":
            return try guardStore({ try store.delete("model2", ws.key, "\(rest[1]):\(rest[3])") }) ? Self.json(.ok, "{}") : Self.json(.noContent, "")
        default:
            throw AMLError(.notFound, "NotFound", "No route for \(call.method) models/\(rest.dropFirst().joined(separator: "/")).")
        }
    }

    /// A model's container: its latest version and the next free number (the SDK numbers new versions from it).
    func modelContainer(_ name: String, ws: Workspace, versions all: [JSONValue]) -> JSONValue {
        let versions = all.filter { $0["_container"]?.string?.lowercased() == name.lowercased() }
        // Below Int.max, so the next one can be counted (a version named Int.max would trap the + 1).
        let numbers = versions.compactMap { $0["name"]?.string.flatMap { Int($0) } }.filter { $0 < Int.max }
        return Self.resource(id: "\(ws.path)/models/\(name)", name: name, type: "models",
                             properties: ["latestVersion": versions.last?["name"] ?? nil, "nextVersion": .string(String((numbers.max() ?? 0) + 1)),
                                          "isArchived": false, "tags": [:], "properties": [:]], created: nil)
    }

    // MARK: Environments (curated names map to the local interpreter)

    func environments(_ call: Call, ws: Workspace, rest: [String]) throws(AMLError) -> Response {
        let r = rest.map { $0.lowercased() }
        func env(_ name: String, _ version: String, _ props: JSONValue? = nil) -> JSONValue {
            Self.resource(id: "\(ws.path)/environments/\(name)/versions/\(version)", name: version, type: "environments/versions",
                          properties: (props ?? ["image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04", "osType": "Linux",
                                                 "description": "aml-local runs every environment on its own Python interpreter."])
                              .setting("provisioningState", "Succeeded").setting("isArchived", false), created: nil)
        }
        switch (call.method, r.count) {
        case (.get, 1):
            return Self.list(try guardStore { try store.list("environment", ws.key) }.map(\.publicView))
        case (.get, 3) where r[2] == "versions":
            let stored = try guardStore { try store.list("environment", ws.key) }.filter { $0.value(at: "_container")?.string?.lowercased() == r[1] }
            return Self.list(stored.isEmpty ? [env(rest[1], "1")] : stored.map(\.publicView))
        case (.get, 4) where r[2] == "versions":
            if let e = try guardStore({ try store.get("environment", ws.key, "\(rest[1]):\(rest[3])") }) { return Self.json(.ok, e.publicView) }
            return Self.json(.ok, env(rest[1], rest[3]))
        case (.put, 4) where r[2] == "versions":
            try Self.checkName(rest[1], "The environment name")
            try Self.checkName(rest[3], "The environment version")
            let e = env(rest[1], rest[3], try call.json()["properties"] ?? [:]).setting("_container", .string(rest[1]))
            try guardStore { try store.put("environment", ws.key, "\(rest[1]):\(rest[3])", e) }
            return Self.json(.created, e.publicView)
        default:
            throw AMLError(.notFound, "NotFound", "No route for \(call.method) environments/\(rest.dropFirst().joined(separator: "/")).")
        }
    }

    // MARK: Datastores (the default blob store, read-only)

    func datastores(_ call: Call, ws: Workspace, rest: [String]) throws(AMLError) -> Response {
        let store: JSONValue = Self.resource(id: "\(ws.path)/datastores/workspaceblobstore", name: "workspaceblobstore", type: "datastores",
                                             properties: ["datastoreType": "AzureBlob", "accountName": "local", "containerName": "workspaceblobstore",
                                                          "endpoint": "core.windows.net", "protocol": "https", "isDefault": true,
                                                          "credentials": ["credentialsType": "None"]], created: nil)
        switch (call.method, rest.count) {
        case (.get, 1): return Self.list([store])
        case (.get, 2) where rest[1].lowercased() == "workspaceblobstore": return Self.json(.ok, store)
        default: throw AMLError(.notFound, "UserError", "Datastore \(rest.dropFirst().first ?? "") was not found (aml-local has workspaceblobstore only, and uploads go through startPendingUpload).")
        }
    }

    // MARK: Cloud metadata

    /// `GET /metadata/endpoints`: the ARM cloud metadata document, so an SDK can be pointed here by name
    /// (`AZUREML_CURRENT_CLOUD` + `ARM_CLOUD_METADATA_URL`).
    func cloudMetadata(base: String) -> Response {
        let host = URL(string: base)?.host ?? "127.0.0.1"
        return Self.json(.ok, [[
            "name": "AmlLocal", "portal": .string(base), "resourceManager": .string(base + "/"),
            "authentication": ["loginEndpoint": .string(base + "/"), "audiences": ["https://management.azure.com/"], "tenant": "common"],
            "suffixes": ["storage": .string(host), "keyVaultDns": .string(host)],
            "graph": .string(base + "/"), "media": .string(base + "/"),
        ]])
    }
}

extension JSONValue {
    var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
}
