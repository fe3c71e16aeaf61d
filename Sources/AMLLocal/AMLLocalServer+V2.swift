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

    // MARK: Command jobs

    func jobs(_ call: Call, ws: Workspace, rest: [String]) throws(AMLError) -> Response {
        let r = rest.map { $0.lowercased() }
        switch (call.method, r.count) {
        case (.get, 1):
            let runs = try guardStore { try store.list("run", ws.key) }.filter { $0["_v2"] != nil }
            return Self.list(runs.map { jobResource($0, ws: ws, base: call.base) })
        case (.get, 2):
            guard let run = try guardStore({ try store.get("run", ws.key, rest[1]) }), run["_v2"] != nil else { throw jobNotFound(rest[1]) }
            return Self.json(.ok, jobResource(run, ws: ws, base: call.base))
        case (.put, 2):
            return try submitJob(call, ws: ws, name: rest[1])
        case (.post, 3) where r[2] == "cancel":
            guard let run = try guardStore({ try store.get("run", ws.key, rest[1]) }), run["_v2"] != nil else { throw jobNotFound(rest[1]) }
            _ = executor.cancel(ws.key, rest[1])
            return Self.json(.accepted, "", headers: try startOperation(target: "\(ws.path)/jobs/\(rest[1])", base: call.base, locationOnly: true))
        case (.delete, 2):
            guard let run = try guardStore({ try store.get("run", ws.key, rest[1]) }), run["_v2"] != nil else { return Self.json(.noContent, "") }
            _ = executor.cancel(ws.key, rest[1])
            try guardStore { _ = try store.delete("run", ws.key, rest[1]) }
            return Self.json(.accepted, "", headers: try startOperation(target: "\(ws.path)/jobs/\(rest[1])", base: call.base, locationOnly: true))
        default:
            throw AMLError(.notFound, "NotFound", "No route for \(call.method) jobs/\(rest.dropFirst().joined(separator: "/")).")
        }
    }

    func jobNotFound(_ name: String) -> AMLError {
        AMLError(.notFound, "UserError", "Job \(name) was not found in this workspace.")
    }

    /// A job as `GET jobs/{name}` answers it.
    func jobResource(_ run: JSONValue, ws: Workspace, base: String) -> JSONValue {
        let name = run["runId"]?.string ?? ""
        var props = run["_v2"] ?? [:]
        props = props.setting("status", run["status"] ?? "NotStarted")
            .setting("services", [
                "Studio": ["jobServiceType": "Studio", "endpoint": studioURL(run, base: base).map(JSONValue.string) ?? nil, "status": nil],
                "Tracking": ["jobServiceType": "Tracking", "endpoint": .string("azureml://local/mlflow/v1.0\(ws.path)"), "status": nil],
            ])
        if let error = run.value(at: "error.error"), error != .null { props = props.setting("error", error) }
        if let start = run["startTimeUtc"], start != .null { props = props.setting(path: "properties.StartTimeUtc", start) }
        if let end = run["endTimeUtc"], end != .null { props = props.setting(path: "properties.EndTimeUtc", end) }
        return Self.resource(id: "\(ws.path)/jobs/\(name)", name: name, type: "jobs", properties: props, created: run["createdUtc"]?.string)
    }

    /// `PUT jobs/{name}`: a command job. The same name again answers the job it already names, so a retried submit
    /// never runs twice.
    func submitJob(_ call: Call, ws: Workspace, name: String) throws(AMLError) -> Response {
        guard case .success = ActionSchema.check(.runID, name) else {
            throw AMLError(.badRequest, "UserError", "The job name \"\(name.prefix(80))\" must be letters, digits, - and _ (at most 256).")
        }
        if let existing = try guardStore({ try store.get("run", ws.key, name) }) {
            guard existing["_v2"] != nil else { throw AMLError(.conflict, "UserError", "A v1 run is named \(name).") }
            return Self.json(.ok, jobResource(existing, ws: ws, base: call.base))
        }
        let body = try call.json()
        guard var props = body["properties"], case .object = props else { throw AMLError(.badRequest, "UserError", "The job body needs properties.") }
        guard props["jobType"]?.string?.lowercased() == "command" else {
            throw AMLError(.badRequest, "UserError", "aml-local runs command jobs (properties.jobType: Command); got \(props["jobType"]?.text ?? "none").")
        }
        guard let template = props["command"]?.string, !template.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw AMLError(.badRequest, "UserError", "properties.command is required.")
        }
        guard let environment = props["environmentId"]?.string, Self.isEnvironmentID(environment) else {
            throw AMLError(.badRequest, "UserError", "properties.environmentId is required: a curated name (azureml:AzureML-sklearn-1.5@latest), a registry id (azureml://registries/azureml/environments/sklearn-1.5/labels/latest) or an environment version id.")
        }
        // The compute: an ARM id or azureml:{name}; none runs serverless.
        var computeName = "_serverless"
        if let compute = props["computeId"]?.string, !compute.isEmpty {
            computeName = compute.split(separator: "/").last.map(String.init) ?? compute
            if computeName.hasPrefix("azureml:") { computeName = String(computeName.dropFirst(8)) }
            guard try guardStore({ try store.get("compute", ws.key, computeName) }) != nil else {
                throw AMLError(.badRequest, "UserError", "Compute \(computeName) was not found in this workspace.")
            }
        }
        let codeDir = try (props["codeId"]?.string).map { id throws(AMLError) in try codeDirectory(id, ws: ws) }
        let uuid = UUID().uuidString.lowercased()
        let runDir = URL(fileURLWithPath: "\(settings.dataDirectory)/runs/\(uuid)")
        let projectDir = runDir.appendingPathComponent("project")
        var values: [String: String] = [:]
        for (key, input) in props["inputs"]?.object ?? [:] {
            switch input["jobInputType"]?.string?.lowercased() {
            case "literal": values["inputs.\(key)"] = input["value"]?.text ?? ""
            case "uri_file", "uri_folder", "mlflow_model", "custom_model":
                guard let uri = input["uri"]?.string else { throw AMLError(.badRequest, "UserError", "inputs.\(key) needs a uri.") }
                values["inputs.\(key)"] = try localPath(ofAsset: uri, ws: ws)?.path ?? uri
            default:
                throw AMLError(.badRequest, "UserError", "inputs.\(key): jobInputType \(input["jobInputType"]?.text ?? "none") is not supported by aml-local (literal, uri_file, uri_folder).")
            }
        }
        for key in (props["outputs"]?.object ?? [:]).keys {
            guard case .success = ActionSchema.check(.name(max: 255, dots: false), key) else {
                throw AMLError(.badRequest, "UserError", "outputs: \(key.prefix(100)) is not a valid output name (letters, digits, - and _).")
            }
            values["outputs.\(key)"] = projectDir.appendingPathComponent("outputs/\(key)").path
        }
        let command = try Self.substitute(template, values)
        var timeout: Int?
        if let text = props.value(at: "limits.timeout")?.string {
            guard let seconds = Self.isoSeconds(text) else {
                throw AMLError(.badRequest, "UserError", "limits.timeout must be an ISO 8601 duration such as PT1H30M, at most 30 days.")
            }
            timeout = seconds
        }
        do {
            try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
            if let codeDir {
                var isDir: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: codeDir, isDirectory: &isDir)
                if isDir.boolValue {
                    try FileManager.default.copyItem(atPath: codeDir, toPath: projectDir.path)
                } else {
                    try FileManager.default.createDirectory(at: projectDir, withIntermediateDirectories: true)
                    try FileManager.default.copyItem(atPath: codeDir, toPath: projectDir.appendingPathComponent((codeDir as NSString).lastPathComponent).path)
                }
            } else {
                try FileManager.default.createDirectory(at: projectDir, withIntermediateDirectories: true)
            }
            for key in (props["outputs"]?.object ?? [:]).keys {
                try FileManager.default.createDirectory(at: projectDir.appendingPathComponent("outputs/\(key)"), withIntermediateDirectories: true)
            }
            try FileManager.default.createDirectory(at: projectDir.appendingPathComponent("outputs"), withIntermediateDirectories: true)
        } catch {
            try? FileManager.default.removeItem(at: runDir)
            throw AMLError(.internalServerError, "ServiceError", "cannot prepare the job's directory: \(error)")
        }
        let experimentName = props["experimentName"]?.string ?? "Default"
        let exp = try experiment(ws.key, experimentName)
        props = props.setting("experimentName", .string(experimentName)).setting("displayName", props["displayName"] ?? .string(name))
            .setting("status", nil).setting("services", nil)
        var environmentVariables: [String: String] = [:]
        for (k, v) in props["environmentVariables"]?.object ?? [:] { environmentVariables[k] = v.text }
        let number = try guardStore { try store.next("runNumber:" + ws.key) }
        let run: JSONValue = [
            "runId": .string(name), "runUuid": .string(uuid), "parentRunId": nil, "rootRunId": .string(name),
            "experimentId": exp["experimentId"] ?? nil, "runNumber": .number(Double(number)), "status": "NotStarted",
            "createdUtc": .string(Self.now()), "startTimeUtc": nil, "endTimeUtc": nil, "name": nil, "displayName": props["displayName"] ?? nil,
            "description": props["description"] ?? nil, "hidden": false, "runType": "azureml.CommandJob", "properties": props["properties"] ?? [:],
            "tags": props["tags"] ?? [:], "target": .string(computeName), "runDefinition": ["command": .string(command), "environment": .string(environment)],
            "error": nil, "warnings": [], "createdBy": ["userName": "aml-local"], "_v2": props,
        ]
        try guardStore { try store.put("run", ws.key, name, run) }
        executor.submit(.init(wsKey: ws.key, runID: name, computeKey: ws.key + "/" + computeName.lowercased(), directory: projectDir,
                              script: "", arguments: [], environment: environmentVariables, maxSeconds: timeout, command: command))
        return Self.json(.created, jobResource(run, ws: ws, base: call.base))
    }

    /// Whether an environment id has one of the forms Azure ML accepts (any of them runs on the local interpreter):
    /// the forms a rule's `environment` is checked against.
    static func isEnvironmentID(_ id: String) -> Bool {
        if case .success = ActionSchema.check(.environmentID, id) { return true }
        return false
    }

    /// Replaces `${{inputs.x}}` and `${{outputs.x}}`, each value as one shell word (quoted unless it holds only
    /// characters no shell treats specially). - Throws: when the command names one the job does not have.
    ///
    /// A value is always one literal piece of a word, whatever quotes the command puts around `${{…}}`: the command
    /// is read as `sh` reads it (backslashes, single and double quotes), and the value is escaped for the quoting in
    /// force where it stands: quoted as a word outside quotes, `'` closed and reopened inside single quotes, and `\`,
    /// `"`, `$` and `` ` `` escaped inside double quotes. Quoting it as a word inside quotes the command opened would
    /// close those quotes and let the value run as shell syntax.
    static func substitute(_ template: String, _ values: [String: String]) throws(AMLError) -> String {
        enum Quoting { case none, single, double }
        var out = String.UnicodeScalarView()
        let scalars = Array(template.unicodeScalars)
        var quoting = Quoting.none, i = 0
        while i < scalars.count {
            let c = scalars[i]
            if c == "$", i + 2 < scalars.count, scalars[i + 1] == "{", scalars[i + 2] == "{" {
                var j = i + 3
                while j + 1 < scalars.count, !(scalars[j] == "}" && scalars[j + 1] == "}") { j += 1 }
                guard j + 1 < scalars.count else { throw AMLError(.badRequest, "UserError", "properties.command has an unclosed ${{.") }
                let key = String(String.UnicodeScalarView(scalars[(i + 3)..<j])).trimmingCharacters(in: .whitespaces)
                guard let value = values[key] else {
                    throw AMLError(.badRequest, "UserError", "properties.command uses ${{\(key)}}, which the job does not define.")
                }
                // A NUL cannot reach a process's arguments: it would cut the command short.
                guard !value.unicodeScalars.contains("\0") else {
                    throw AMLError(.badRequest, "UserError", "${{\(key)}} holds a NUL character.")
                }
                switch quoting {
                case .none: out.append(contentsOf: Template.shellQuoted(value).unicodeScalars)
                case .single:
                    for v in value.unicodeScalars { if v == "'" { out.append(contentsOf: "'\\''".unicodeScalars) } else { out.append(v) } }
                case .double:
                    for v in value.unicodeScalars {
                        if "\\\"$`".unicodeScalars.contains(v) { out.append("\\") }
                        out.append(v)
                    }
                }
                i = j + 2
                continue
            }
            out.append(c)
            switch (quoting, c) {
            case (.none, "\\"), (.double, "\\"):
                if i + 1 < scalars.count { out.append(scalars[i + 1]); i += 1 }
            case (.none, "'"): quoting = .single
            case (.none, "\""): quoting = .double
            case (.single, "'"): quoting = .none
            case (.double, "\""): quoting = .none
            default: break
            }
            i += 1
        }
        return String(out)
    }

    /// The longest `limits.timeout` a job may set (30 days).
    static let maxTimeoutSeconds = 30 * 86_400

    /// Seconds of an ISO 8601 duration such as `PT1H30M`, `PT90S`, or nil when it is not one or is over 30 days.
    static func isoSeconds(_ text: String) -> Int? {
        guard text.uppercased().hasPrefix("PT") else { return nil }
        var total = 0.0, number = ""
        for c in text.uppercased().dropFirst(2) {
            if c.isNumber || c == "." { number.append(c); continue }
            guard let n = Double(number) else { return nil }
            switch c { case "H": total += n * 3600; case "M": total += n * 60; case "S": total += n; default: return nil }
            number = ""
        }
        // Bounded before the conversion: a huge duration would trap converting to Int.
        guard number.isEmpty, total > 0, total <= Double(maxTimeoutSeconds) else { return nil }
        return Int(total.rounded(.up))
    }

    /// A local file or folder from an asset URI: a job's artifact (`azureml://jobs/{job}/outputs/artifacts/paths/{p}`,
    /// read from the job's `outputs/{p}`, else `{p}` in its working directory) or a blob of this server.
    /// - Returns: nil for URIs that are not local (passed through as they are).
    /// - Throws: when the URI names a job that is not there.
    static func leavesItsJob(_ uri: String) -> AMLError {
        AMLError(.badRequest, "UserError", "\(uri.prefix(200)) leaves its job's folder (a link to somewhere else): refused.")
    }

    func localPath(ofAsset uri: String, ws: Workspace) throws(AMLError) -> URL? {
        let prefix = "azureml://jobs/"
        if uri.lowercased().hasPrefix(prefix) {
            let rest = uri.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            guard rest.count >= 4, rest[1].lowercased() == "outputs", rest[2].lowercased() == "artifacts", rest[3].lowercased() == "paths",
                  rest.dropFirst(4).allSatisfy({ $0 != ".." }) else {
                throw AMLError(.badRequest, "UserError", "\(uri.prefix(200)) must be azureml://jobs/{name}/outputs/artifacts/paths/{path}.")
            }
            guard let run = try guardStore({ try store.get("run", ws.key, rest[0]) }), let uuid = run["runUuid"]?.string else {
                throw AMLError(.badRequest, "UserError", "Job \(rest[0]) was not found in this workspace.")
            }
            let project = URL(fileURLWithPath: "\(settings.dataDirectory)/runs/\(uuid)/project")
            let names = Array(rest.dropFirst(4))
            guard let inOutputs = ContainedPath.join(project.appendingPathComponent("outputs"), names),
                  let inProject = ContainedPath.join(project, names) else {
                throw AMLError(.badRequest, "UserError", "\(uri.prefix(200)): each part of the path must be a plain name.")
            }
            let chosen = FileManager.default.fileExists(atPath: inOutputs.path) || names.isEmpty ? inOutputs : inProject
            // The job wrote these files: a link among them (outputs/model -> /root) must not take the path out of its folder.
            guard FileManager.default.fileExists(atPath: chosen.path) else {
                guard ContainedPath.parentStaysUnder(chosen, root: project) else { throw Self.leavesItsJob(uri) }
                return chosen
            }
            guard let resolved = ContainedPath.resolve(chosen.path, under: project.path) else { throw Self.leavesItsJob(uri) }
            return URL(fileURLWithPath: resolved)
        }
        return localPath(ofBlobURL: uri)
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
