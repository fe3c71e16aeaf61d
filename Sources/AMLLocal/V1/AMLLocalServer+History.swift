import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore
import Signing

extension AMLLocalServer {
    /// Run history (`/history/v1.0{ws}/…`) and execution (`/execution/v1.0{ws}/…`).
    func history(_ call: Call, ws: String, rest: [String], execution: Bool) async throws(AMLError) -> Response {
        let r = rest.map { $0.lowercased() }
        let wsPath = "/" + call.segments[2..<10].joined(separator: "/")
        switch (call.method, r.count) {
        case (.get, 1) where r[0] == "experiments":
            return Self.json(.ok, ["value": .array(try guardStore { try store.list("experiment", ws) }), "continuationToken": nil])
        case (.post, 1) where r[0] == "experiments:query":
            let body = try call.json()
            let all = try guardStore { try store.list("experiment", ws) }
            let offset = try Self.pagingOffset(body["continuationToken"]?.string, name: "continuationToken")
            let top = max(1, min(body["top"]?.int ?? 100, 1000))
            let page = Array(all.dropFirst(offset).prefix(top))
            let next: JSONValue = offset + page.count < all.count ? .string(String(offset + page.count)) : nil
            return Self.json(.ok, ["value": .array(page), "continuationToken": next])
        case (.get, 2) where r[0] == "experiments":
            guard let e = try guardStore({ try store.get("experiment", ws, rest[1]) }) else { throw AMLError.notFound("Experiment \(rest[1])") }
            return Self.json(.ok, e)
        case (.post, 2) where r[0] == "experiments":
            return Self.json(.ok, try experiment(ws, rest[1]))
        case (.post, 3) where execution && r[0] == "experiments" && r[2] == "startrun":
            return try startRun(call, ws: ws, wsPath: wsPath, experiment: rest[1])
        case (.post, 5) where execution && r[0] == "experiments" && r[2] == "runid" && r[4] == "cancel":
            guard executor.cancel(ws, rest[3]) != nil else { throw AMLError.notFound("Run \(rest[3])") }
            return Self.json(.ok, ["runId": .string(rest[3])])
        case (.get, 4) where r[0] == "experiments" && r[2] == "runs":
            return Self.json(.ok, try run(ws, rest[3]).publicView)
        case (.patch, 4) where r[0] == "experiments" && r[2] == "runs":
            // The SDK sends a plain CreateRunDto object (json-patch+json content type, not a patch array).
            let body = try call.json()
            _ = try run(ws, rest[3])
            let updated = executor.update(ws, rest[3]) { run in
                var next = run
                for key in ["displayName", "description", "name", "hidden"] { if let v = body[key] { next = next.setting(key, v) } }
                for key in ["properties", "tags"] {
                    for (k, v) in body[key]?.object ?? [:] { next = next.setting(path: "\(key).\(k)", v) }
                }
                return next
            }
            return Self.json(.ok, (updated ?? [:]).publicView)
        case (.get, 5) where r[0] == "experiments" && r[2] == "runs" && r[4] == "details",
             (.get, 3) where r[0] == "runs" && r[2] == "details":
            let run = try run(ws, rest[r.count - 2])
            var details: [String: JSONValue] = ["warnings": [], "logFiles": logFiles(run, base: call.base)]
            for key in ["runId", "target", "status", "startTimeUtc", "endTimeUtc", "properties", "runDefinition", "error"] {
                details[key] = run[key] ?? .null
            }
            return Self.json(.ok, .object(details))
        case (.post, 5) where r[0] == "experiments" && r[2] == "runs" && r[4] == "events":
            let body = try call.json()
            if body["name"]?.string?.hasSuffix("Run.Canceled") == true { _ = executor.cancel(ws, rest[3]) }
            return Self.json(.ok, "{}")
        default:
            throw AMLError(.notFound, "UserError", "No route for \(call.method) \(rest.joined(separator: "/")).", inner: "NotFoundError")
        }
    }

    func run(_ ws: String, _ id: String) throws(AMLError) -> JSONValue {
        guard let run = try guardStore({ try store.get("run", ws, id) }) else { throw AMLError.notFound("Run \(id)") }
        return run
    }

    /// Gets or creates an experiment.
    func experiment(_ ws: String, _ name: String) throws(AMLError) -> JSONValue {
        guard case .success = ActionSchema.check(.name(max: 255, dots: false), name) else {
            throw AMLError.validation("\"\(name)\" is not a valid experiment name (letters, digits, - and _)")
        }
        return try guardStore {
            if let e = try store.get("experiment", ws, name) { return e }
            let e: JSONValue = ["experimentId": .string(UUID().uuidString.lowercased()), "name": .string(name), "description": nil,
                                "createdUtc": .string(Self.now()), "archivedTime": nil, "tags": [:]]
            try store.put("experiment", ws, name, e)
            return e
        }
    }

    /// URLs of a run's log files, signed so they can be fetched without a token (like blob SAS URLs).
    func logFiles(_ run: JSONValue, base: String) -> JSONValue {
        guard let uuid = run["runUuid"]?.string else { return [:] }
        var files: [String: JSONValue] = [:]
        // A v2 command job writes one log, stdout and stderr together, where the v2 SDK streams it from.
        let names = run["_v2"] != nil ? [("user_logs/std_log.txt", "70_driver_log.txt")]
            : [("azureml-logs/70_driver_log.txt", "70_driver_log.txt"), ("azureml-logs/70_driver_stderr.txt", "70_driver_stderr.txt")]
        for (name, file) in names {
            files[name] = .string("\(base)/logs/\(uuid)/\(file)?sig=\(tokens.sign("\(uuid)/\(file)"))")
        }
        return .object(files)
    }

    /// `GET /logs/{runUuid}/{file}?sig=…`.
    func logFile(_ call: Call) throws(AMLError) -> Response {
        guard call.segments.count == 3, let sig = call.query["sig"], tokens.verify("\(call.segments[1])/\(call.segments[2])", sig),
              UUID(uuidString: call.segments[1]) != nil, ["70_driver_log.txt", "70_driver_stderr.txt"].contains(call.segments[2]) else {
            throw AMLError(.forbidden, "AuthorizationFailure", "The log URL is not valid.")
        }
        let path = "\(settings.dataDirectory)/runs/\(call.segments[1].lowercased())/logs/\(call.segments[2])"
        let data = FileManager.default.contents(atPath: path) ?? Data()
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: .init(bytes: data)))
    }

    /// `POST …/experiments/{exp}/startrun[?runId=]`: multipart `projectZipFile` + `runDefinitionFile`.
    func startRun(_ call: Call, ws: String, wsPath: String, experiment name: String) throws(AMLError) -> Response {
        let runID = call.query["runid"] ?? "\(name)_\(Int(Date().timeIntervalSince1970 * 1000))"
        guard runID.range(of: #"^[a-zA-Z0-9][\w-]{0,255}$"#, options: .regularExpression) != nil else {
            throw AMLError.validation("runId \"\(runID)\" must match ^[a-zA-Z0-9][\\w-]{0,255}$")
        }
        // The same runId again returns the run it already names: a retried start never runs twice.
        if try guardStore({ try store.get("run", ws, runID) }) != nil { return Self.json(.ok, ["runId": .string(runID)]) }

        let form = try MultipartForm(contentType: call.headers[.contentType] ?? "", body: call.body)
        guard let zip = form.part("projectZipFile") else { throw AMLError.validation("the projectZipFile part is missing") }
        guard let defPart = form.part("runDefinitionFile") else { throw AMLError.validation("the runDefinitionFile part is missing") }
        guard let definition = JSONValue(json: defPart.body) else { throw AMLError.validation("runDefinitionFile is not valid JSON") }
        let config = definition.member("configuration") ?? definition
        guard let script = config.member("script")?.string, !script.isEmpty else {
            throw AMLError.validation("the run definition has no Configuration.Script")
        }
        guard case .success = ActionSchema.check(.relativePath, script) else {
            throw AMLError.validation("Configuration.Script \"\(script)\" must be a relative path inside the project")
        }
        guard let target = config.member("target")?.string, !target.isEmpty else {
            throw AMLError.validation("the run definition has no Configuration.Target (the compute to run on)")
        }
        guard try guardStore({ try store.get("compute", ws, target) }) != nil else {
            throw AMLError(.badRequest, "UserError", "Compute target \"\(target)\" was not found in this workspace.", inner: "ComputeTargetNotFound")
        }
        let arguments = (config.member("arguments")?.array ?? []).map(\.text)
        var environment: [String: String] = [:]
        for (k, v) in config.member(path: "environment.environmentVariables")?.object ?? [:] { environment[k] = v.text }
        let maxSeconds = config.member("maxRunDurationSeconds")?.int

        let uuid = UUID().uuidString.lowercased()
        let runDir = URL(fileURLWithPath: "\(settings.dataDirectory)/runs/\(uuid)")
        let projectDir = runDir.appendingPathComponent("project")
        do {
            try FileManager.default.createDirectory(at: projectDir, withIntermediateDirectories: true)
            try Data(zip.body).write(to: runDir.appendingPathComponent("project.zip"))
        } catch {
            throw AMLError(.internalServerError, "ServiceError", "cannot store the project: \(error)")
        }
        do {
            try SafeUnzip.extract(zip.body, to: projectDir, maxBytes: settings.maxUnpackedBytes)
        } catch {
            try? FileManager.default.removeItem(at: runDir)
            throw error
        }
        guard FileManager.default.fileExists(atPath: projectDir.appendingPathComponent(script).path) else {
            try? FileManager.default.removeItem(at: runDir)
            throw AMLError.validation("Configuration.Script \"\(script)\" is not in projectZipFile (the entry script sits at the zip root)")
        }
        let exp = try experiment(ws, name)
        let number = try guardStore { try store.next("runNumber:" + ws) }
        let run: JSONValue = [
            "runId": .string(runID), "runUuid": .string(uuid), "parentRunId": nil, "rootRunId": .string(runID),
            "experimentId": exp["experimentId"] ?? nil, "runNumber": .number(Double(number)), "status": "NotStarted",
            "createdUtc": .string(Self.now()), "startTimeUtc": nil, "endTimeUtc": nil, "name": nil, "displayName": .string(runID),
            "description": nil, "hidden": false, "runType": "azureml.scriptrun", "properties": [:], "tags": [:],
            "scriptName": .string(script), "target": .string(target), "runDefinition": definition, "error": nil, "warnings": [],
            "createdBy": ["userName": "aml-local"],
            "cancelUri": .string("\(call.base)/execution/v1.0\(wsPath)/experiments/\(name)/runId/\(runID)/cancel"),
        ]
        try guardStore { try store.put("run", ws, runID, run) }
        executor.submit(.init(wsKey: ws, runID: runID, computeKey: ws + "/" + target.lowercased(), directory: projectDir,
                              script: script, arguments: arguments, environment: environment, maxSeconds: maxSeconds))
        return Self.json(.ok, ["runId": .string(runID)])
    }
}

extension TokenIssuer {
    /// A URL-safe signature of `text` (for log links).
    func sign(_ text: String) -> String { String(issueMAC(text).prefix(32)) }

    func verify(_ text: String, _ sig: String) -> Bool {
        ConstantTime.equals(Array(sign(text).utf8), Array(sig.utf8))
    }
}

extension AMLLocalServer {
    /// Deletes the project (code, outputs and the uploaded zip) of every run that ended before `cutoff`; its
    /// record and logs stay, so history still reads. - Returns: how many runs were pruned.
    func pruneRuns(endedBefore cutoff: Date) throws -> Int {
        let fm = FileManager.default
        var pruned = 0
        for (_, run) in try store.all("run") {
            guard let status = run["status"]?.string, ["Completed", "Failed", "Canceled"].contains(status),
                  let uuid = run["runUuid"]?.string, uuid.allSatisfy({ $0.isHexDigit || $0 == "-" }),
                  let ended = run["endTimeUtc"]?.string.flatMap(Self.parseTime), ended < cutoff else { continue }
            let dir = "\(settings.dataDirectory)/runs/\(uuid)"
            var removed = false
            for item in ["project", "project.zip"] where fm.fileExists(atPath: dir + "/" + item) {
                if (try? fm.removeItem(atPath: dir + "/" + item)) != nil { removed = true }
            }
            if removed { pruned += 1 }
        }
        return pruned
    }
}
