import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore
import Signing

/// aml-local's v2 command jobs: submit (PUT), read, list, cancel, and what a job's command and inputs may name.
extension AMLLocalServer {
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
}
