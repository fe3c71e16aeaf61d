import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore
import Signing

/// Managed online endpoints and their deployments (v2), scored locally: a deployment names a v2 model (its local
/// files are `AZUREML_MODEL_DIR`) and a code asset with its scoring script (`init()` and `run(raw)`), run confined
/// like v1 services. `POST {scoringUri}` with `Authorization: Bearer {key}` picks the deployment named by
/// `azureml-model-deployment`, else the one with the most traffic, else the only one.
extension AMLLocalServer {
    func onlineEndpoints(_ call: Call, ws: Workspace, rest: [String]) throws(AMLError) -> Response {
        let r = rest.map { $0.lowercased() }
        if r.count == 1 {
            guard call.method == .get else { throw AMLError(.methodNotAllowed, "MethodNotAllowed", "List endpoints with GET.") }
            return Self.list(try guardStore { try store.list("endpoint", ws.key) }.map { endpointView($0, base: call.base) })
        }
        let name = rest[1]
        let id = "\(ws.path)/onlineEndpoints/\(name)"
        if r.count >= 3, r[2] == "deployments" { return try deployments(call, ws: ws, endpoint: name, rest: Array(rest.dropFirst(3))) }
        guard r.count == 2 || (r.count == 3 && call.method == .post) else { throw AMLError(.notFound, "NotFound", "No such endpoint route.") }
        let existing = try guardStore { try store.get("endpoint", ws.key, name) }
        if r.count == 3 {
            guard let e = existing else { throw endpointNotFound(name) }
            switch r[2] {
            case "listkeys": return Self.json(.ok, ["primaryKey": e["_primaryKey"] ?? nil, "secondaryKey": e["_secondaryKey"] ?? nil])
            case "token":
                let (token, expiry) = tokens.issue(clientID: "endpoint:\(name)", now: settings.now())
                return Self.json(.ok, ["accessToken": .string(token), "tokenType": "Bearer", "expiryTimeUtc": .number(Double(expiry)),
                                       "refreshAfterTimeUtc": .number(Double(expiry - 600))])
            case "regeneratekeys":
                let which = (try call.json())["keyType"]?.string?.lowercased() == "secondary" ? "_secondaryKey" : "_primaryKey"
                try guardStore { try store.put("endpoint", ws.key, name, e.setting(which, .string(ByteEncoding.hex(ConstantTime.randomBytes(16))))) }
                return Self.json(.accepted, "", headers: try startOperation(target: id, base: call.base))
            default: throw AMLError(.notFound, "NotFound", "No such endpoint action \(rest[2]).")
            }
        }
        switch call.method {
        case .get:
            guard let e = existing else { throw endpointNotFound(name) }
            return Self.json(.ok, endpointView(e, base: call.base))
        case .put, .patch:
            if existing == nil {
                guard call.method == .put else { throw endpointNotFound(name) }
                guard case .success = ActionSchema.check(.name(max: 32, dots: false), name), name.first?.isLetter == true else {
                    throw AMLError(.badRequest, "UserError", "The endpoint name must start with a letter and be letters, digits and - (3-32).")
                }
            }
            let body = try call.json()
            let props = body["properties"] ?? [:]
            let mode = props["authMode"]?.string ?? existing?.value(at: "properties.authMode")?.string ?? "Key"
            guard ["key", "amltoken", "aadtoken"].contains(mode.lowercased()) else {
                throw AMLError(.badRequest, "UserError", "properties.authMode must be Key, AMLToken or AADToken.")
            }
            let scoringID = existing?["_scoringID"]?.string ?? UUID().uuidString.lowercased()
            var e: JSONValue = existing ?? Self.resource(id: id, name: name, type: "onlineEndpoints", properties: [:], created: nil,
                                                         extra: ["location": body["location"] ?? "local", "kind": "Managed",
                                                                 "identity": ["type": "SystemAssigned"]])
                .setting("_scoringID", .string(scoringID))
                .setting("_primaryKey", .string(ByteEncoding.hex(ConstantTime.randomBytes(16))))
                .setting("_secondaryKey", .string(ByteEncoding.hex(ConstantTime.randomBytes(16))))
            e = e.setting(path: "properties.authMode", .string(mode))
            for key in ["description", "traffic", "mirrorTraffic", "properties"] { if let v = props[key] { e = e.setting(path: "properties.\(key)", v) } }
            if let tags = body["tags"] { e = e.setting("tags", tags) }
            try guardStore {
                try store.put("endpoint", ws.key, name, e.setting(path: "properties.provisioningState", "Succeeded"))
                try store.put("scoring", "", scoringID, ["ws": .string(ws.key), "endpoint": .string(name)])
            }
            return Self.json(existing == nil ? .created : .ok, endpointView(e.setting(path: "properties.provisioningState", existing == nil ? "Creating" : "Updating"), base: call.base),
                             headers: try startOperation(target: id, base: call.base))
        case .delete:
            guard let e = existing else { return Self.json(.noContent, "") }
            try guardStore {
                try store.delete("endpoint", ws.key, name)
                if let s = e["_scoringID"]?.string { try store.delete("scoring", "", s) }
                for (n, _) in try store.names("deployment", ws.key) where n.lowercased().hasPrefix(name.lowercased() + "/") { try store.delete("deployment", ws.key, n) }
            }
            return Self.json(.accepted, "", headers: try startOperation(target: id, base: call.base))
        default:
            throw AMLError(.methodNotAllowed, "MethodNotAllowed", "\(call.method) is not supported on an endpoint.")
        }
    }

    func endpointNotFound(_ name: String) -> AMLError {
        AMLError(.notFound, "UserError", "Online endpoint \(name) was not found in this workspace.")
    }

    func endpointView(_ e: JSONValue, base: String) -> JSONValue {
        e.setting(path: "properties.scoringUri", .string("\(base)/score/\(e["_scoringID"]?.string ?? "")"))
            .setting(path: "properties.swaggerUri", nil)
            .setting(path: "properties.traffic", e.value(at: "properties.traffic") ?? [:]).publicView
    }

    func deployments(_ call: Call, ws: Workspace, endpoint: String, rest: [String]) throws(AMLError) -> Response {
        guard try guardStore({ try store.get("endpoint", ws.key, endpoint) }) != nil else { throw endpointNotFound(endpoint) }
        if rest.isEmpty {
            let all = try guardStore { try store.names("deployment", ws.key) }.filter { $0.0.lowercased().hasPrefix(endpoint.lowercased() + "/") }
            return Self.list(all.map(\.1.publicView))
        }
        let name = rest[0]
        let key = "\(endpoint)/\(name)"
        let id = "\(ws.path)/onlineEndpoints/\(endpoint)/deployments/\(name)"
        let existing = try guardStore { try store.get("deployment", ws.key, key) }
        switch (call.method, rest.count) {
        case (.get, 1):
            guard let d = existing else { throw AMLError(.notFound, "UserError", "Deployment \(name) was not found on endpoint \(endpoint).") }
            return Self.json(.ok, d.publicView)
        case (.put, 1), (.patch, 1):
            guard case .success = ActionSchema.check(.name(max: 32, dots: false), name) else {
                throw AMLError(.badRequest, "UserError", "The deployment name must be letters, digits and - (at most 32).")
            }
            let body = try call.json()
            var props = existing?["properties"] ?? [:]
            for (k, v) in (body["properties"] ?? [:]).object { props = props.setting(k, v) }
            guard let modelID = props["model"]?.string, let modelDir = try modelDirectory(modelID, ws: ws) else {
                throw AMLError(.badRequest, "UserError", "properties.model must name a v2 model of this workspace whose files aml-local holds (registered from a job's output).")
            }
            guard let codeID = props.value(at: "codeConfiguration.codeId")?.string,
                  let script = props.value(at: "codeConfiguration.scoringScript")?.string,
                  case .success = ActionSchema.check(.relativePath, script) else {
                throw AMLError(.badRequest, "UserError", "properties.codeConfiguration needs codeId and scoringScript (a relative path).")
            }
            let codeDir = try codeDirectory(codeID, ws: ws)
            guard FileManager.default.fileExists(atPath: codeDir + "/" + script) else {
                throw AMLError(.badRequest, "UserError", "The scoring script \(script) is not in code \(codeID.prefix(200)).")
            }
            guard let model = storedFolder(modelDir), let code = storedFolder(codeDir) else {
                throw AMLError(.badRequest, "UserError", "The model's or the code's files leave their folder (a link to somewhere else): refused.")
            }
            props = props.setting("provisioningState", "Succeeded").setting("endpointComputeType", props["endpointComputeType"] ?? "Managed")
                .setting("scaleSettings", props["scaleSettings"] ?? ["scaleType": "Default"])
            let d = Self.resource(id: id, name: name, type: "onlineEndpoints/deployments", properties: props,
                                  created: existing?.value(at: "systemData.createdAt")?.string,
                                  extra: ["location": body["location"] ?? "local", "sku": body["sku"] ?? ["name": "Default", "capacity": 1]])
                .setting("_model", .string(model)).setting("_code", .string(code)).setting("_script", .string(script))
            try guardStore { try store.put("deployment", ws.key, key, d) }
            return Self.json(existing == nil ? .created : .ok, d.setting(path: "properties.provisioningState", existing == nil ? "Creating" : "Updating").publicView,
                             headers: try startOperation(target: id, base: call.base))
        case (.delete, 1):
            guard existing != nil else { return Self.json(.noContent, "") }
            _ = try guardStore { try store.delete("deployment", ws.key, key) }
            return Self.json(.accepted, "", headers: try startOperation(target: id, base: call.base))
        case (.post, 2) where rest[1].lowercased() == "getlogs":
            return Self.json(.ok, ["content": ""])
        default:
            throw AMLError(.notFound, "NotFound", "No such deployment route.")
        }
    }

    /// A folder of aml-local's own (a job's output, an uploaded blob) resolved, where it stays in its place: a job's
    /// files under its own project folder, blobs under the blob store. - Returns: nil when a link takes it elsewhere.
    func storedFolder(_ path: String) -> String? {
        let data = URL(fileURLWithPath: settings.dataDirectory).standardizedFileURL.path
        let parts = URL(fileURLWithPath: path).standardizedFileURL.path.dropFirst(data.count).split(separator: "/").map(String.init)
        guard URL(fileURLWithPath: path).standardizedFileURL.path.hasPrefix(data + "/"), let area = parts.first else { return nil }
        switch area {
        case "runs" where parts.count >= 3 && parts[2] == "project": return ContainedPath.resolve(path, under: "\(data)/runs/\(parts[1])/project")
        case "blobs": return ContainedPath.resolve(path, under: "\(data)/blobs")
        default: return nil
        }
    }

    /// A v2 model's local folder from its id (`assetKey`).
    func modelDirectory(_ id: String, ws: Workspace) throws(AMLError) -> String? {
        guard let key = Self.assetKey(id, kind: "models"), let m = try guardStore({ try store.get("model2", ws.key, key) }) else { return nil }
        return m["_path"]?.string
    }

    /// Scores a v2 endpoint (`score(_:)` routes here for endpoint scoring links).
    func scoreEndpoint(_ call: Call, ws: String, endpoint name: String) async throws(AMLError) -> Response {
        guard let e = try guardStore({ try store.get("endpoint", ws, name) }) else { throw AMLError(.notFound, "NotFound", "No scoring endpoint here.") }
        let credential = (call.headers[.authorization] ?? "").split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
        let mode = e.value(at: "properties.authMode")?.string?.lowercased() ?? "key"
        let keys = [e["_primaryKey"]?.string, e["_secondaryKey"]?.string].compactMap { $0 }
        let allowed = mode == "key" ? keys.contains { ConstantTime.tokenEquals($0, credential) } : tokens.problem(with: credential, now: settings.now()) == nil
        guard allowed else { throw AMLError(.unauthorized, "Unauthorized", "The key or token is missing or wrong.") }
        let all = try guardStore { try store.names("deployment", ws) }.filter { $0.0.lowercased().hasPrefix(name.lowercased() + "/") }
        guard !all.isEmpty else { throw AMLError(.notFound, "NotFound", "Endpoint \(name) has no deployment.") }
        var chosen: JSONValue?
        if let wanted = call.headers[HTTPField.Name("azureml-model-deployment")!] {
            chosen = all.first { $0.0.lowercased() == "\(name)/\(wanted)".lowercased() }?.1
            guard chosen != nil else { throw AMLError(.notFound, "NotFound", "Endpoint \(name) has no deployment \(wanted).") }
        } else {
            let traffic = e.value(at: "properties.traffic")?.object ?? [:]
            chosen = all.max { (traffic[($0.1["name"]?.string ?? "")]?.int ?? 0) < (traffic[($1.1["name"]?.string ?? "")]?.int ?? 0) }?.1
            if all.count > 1, traffic.values.allSatisfy({ ($0.int ?? 0) == 0 }) {
                throw AMLError(.badRequest, "BadRequest", "Endpoint \(name) has several deployments and no traffic: name one with azureml-model-deployment.")
            }
        }
        guard let d = chosen, let model = d["_model"]?.string, let code = d["_code"]?.string, let script = d["_script"]?.string else {
            throw AMLError(.notFound, "NotFound", "Endpoint \(name) has no usable deployment.")
        }
        guard JSONValue(json: call.body) != nil else { throw AMLError(.badRequest, "BadRequest", "The body must be JSON.") }
        switch await Self.runScoring(sandbox: sandbox, directory: code, entry: script, input: call.body, modelDirectory: model) {
        case .success(let output): return Self.json(.ok, output)
        case .failure(let failure): throw AMLError(.internalServerError, "ScoringFailed", failure.message)
        }
    }
}
