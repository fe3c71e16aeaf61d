import ChildProcess
import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore
import NIOCore
import Signing

extension AMLLocalServer {
    /// Local deployments: `PUT|GET|DELETE {M}/services/{name}`, `POST {M}/services/{name}/listkeys`.
    ///
    /// A deployment serves one registered model whose `url` is a `file://` directory holding its entry script
    /// (`score.py` unless `entryScript` says otherwise) and its artifacts.
    func services(_ call: Call, ws: String, rest: [String]) throws(AMLError) -> Response {
        guard rest.count >= 2 else {
            return Self.json(.ok, ["value": .array(try guardStore({ try store.list("service", ws) }).map(\.publicView))])
        }
        let name = rest[1]
        if rest.count == 3, rest[2].lowercased() == "listkeys", call.method == .post {
            guard let s = try guardStore({ try store.get("service", ws, name) }) else { throw AMLError(.notFound, "NotFound", "Service \(name) was not found.") }
            return Self.json(.ok, ["primaryKey": s["_primaryKey"] ?? nil, "secondaryKey": s["_secondaryKey"] ?? nil])
        }
        switch call.method {
        case .get:
            guard let s = try guardStore({ try store.get("service", ws, name) }) else { throw AMLError(.notFound, "NotFound", "Service \(name) was not found.") }
            return Self.json(.ok, s.publicView)
        case .put:
            guard case .success = ActionSchema.check(.name(max: 32, dots: false), name) else {
                throw AMLError(.badRequest, "BadRequest", "service name \"\(name)\" must be letters, digits, - and _ (at most 32)")
            }
            let body = try call.json()
            guard let modelID = body["modelId"]?.string ?? body["modelIds"]?.array?.first?.string,
                  let model = try guardStore({ try store.get("model", ws, modelID) }) else {
                throw AMLError(.badRequest, "BadRequest", "modelId must name a registered model (name:version).")
            }
            // Kept resolved, so a link swapped in later is seen at bind time (runScoring).
            guard let url = model["url"]?.string, url.hasPrefix("file://"), let named = URL(string: url)?.path,
                  let dir = ContainedPath.resolved(named) else {
                throw AMLError(.badRequest, "BadRequest", "model \(modelID) has no local directory: register it with a file:// url to deploy it locally.")
            }
            let entry = body["entryScript"]?.string ?? "score.py"
            guard case .success = ActionSchema.check(.relativePath, entry),
                  FileManager.default.fileExists(atPath: dir + "/" + entry) else {
                throw AMLError(.badRequest, "BadRequest", "entry script \(entry) is not in \(dir).")
            }
            let id = UUID().uuidString.lowercased()
            let service: JSONValue = [
                "name": .string(name), "id": .string(id), "modelIds": [.string(modelID)], "entryScript": .string(entry),
                "state": "Healthy", "computeType": "local", "createdTime": .string(Self.now()),
                "scoringUri": .string("\(call.base)/score/\(id)"),
                "_dir": .string(dir), "_primaryKey": .string(ByteEncoding.hex(ConstantTime.randomBytes(16))),
                "_secondaryKey": .string(ByteEncoding.hex(ConstantTime.randomBytes(16))),
            ]
            try guardStore {
                if let old = try store.get("service", ws, name), let oldID = old["id"]?.string { try store.delete("scoring", "", oldID) }
                try store.put("service", ws, name, service)
                try store.put("scoring", "", id, ["ws": .string(ws), "service": .string(name)])
            }
            return Self.json(.ok, service.publicView)
        case .delete:
            guard let s = try guardStore({ try store.get("service", ws, name) }) else { return Self.json(.noContent, "") }
            try guardStore {
                try store.delete("service", ws, name)
                if let id = s["id"]?.string { try store.delete("scoring", "", id) }
            }
            return Self.json(.ok, "{}")
        default:
            throw AMLError(.methodNotAllowed, "MethodNotAllowed", "\(call.method) is not supported on a service.")
        }
    }

    /// Whether a scoring request's credential is right for its service or endpoint (key, or a token where the
    /// endpoint takes one), read from the head before the body.
    func scoringCredentialMatches(_ call: Call) -> Bool {
        guard let link = try? store.get("scoring", "", call.segments[1]), let ws = link["ws"]?.string else { return false }
        let credential = (call.headers[.authorization] ?? "").split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
        var keys: [String] = []
        if let name = link["endpoint"]?.string, let e = try? store.get("endpoint", ws, name) {
            if (e.value(at: "properties.authMode")?.string?.lowercased() ?? "key") != "key" {
                return tokens.problem(with: credential, now: settings.now()) == nil
            }
            keys = [e["_primaryKey"]?.string, e["_secondaryKey"]?.string].compactMap { $0 }
        } else if let name = link["service"]?.string, let service = try? store.get("service", ws, name) {
            keys = [service["_primaryKey"]?.string, service["_secondaryKey"]?.string].compactMap { $0 }
        }
        return keys.contains { ConstantTime.tokenEquals($0, credential) }
    }

    /// `POST /score/{id}` with `Authorization: Bearer {key}` and a JSON body such as `{"data": [...]}`:
    /// runs the entry script's `init()` and `run(raw_body)` in python3 and answers its return value as JSON.
    func score(_ call: Call) async throws(AMLError) -> Response {
        guard call.segments.count == 2, call.method == .post,
              let link = try guardStore({ try store.get("scoring", "", call.segments[1]) }),
              let ws = link["ws"]?.string else {
            throw AMLError(.notFound, "NotFound", "No scoring endpoint here.")
        }
        if let endpoint = link["endpoint"]?.string { return try await scoreEndpoint(call, ws: ws, endpoint: endpoint) }
        guard let name = link["service"]?.string,
              let service = try guardStore({ try store.get("service", ws, name) }) else {
            throw AMLError(.notFound, "NotFound", "No scoring endpoint here.")
        }
        let key = (call.headers[.authorization] ?? "").split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
        let keys = [service["_primaryKey"]?.string, service["_secondaryKey"]?.string].compactMap { $0 }
        guard keys.contains(where: { ConstantTime.tokenEquals($0, key) }) else {
            throw AMLError(.unauthorized, "Unauthorized", "The scoring key is missing or wrong.")
        }
        guard JSONValue(json: call.body) != nil else { throw AMLError(.badRequest, "BadRequest", "the body must be JSON, such as {\"data\": [...]}") }
        let dir = service["_dir"]?.string ?? "", entry = service["entryScript"]?.string ?? "score.py"
        let result = await Self.runScoring(sandbox: sandbox, directory: dir, entry: entry, input: call.body)
        switch result {
        case .success(let output):
            guard JSONValue(json: Array(output.utf8)) != nil else {
                throw AMLError(.internalServerError, "ScoringFailed", "run() did not return JSON-serializable data.")
            }
            return Self.json(.ok, output)
        case .failure(let message):
            throw AMLError(.internalServerError, "ScoringFailed", message.message)
        }
    }

    /// The harness that loads the entry script the way Azure ML's scoring server does.
    static let harness = """
        import importlib.util, json, os, sys
        directory, entry = sys.argv[1], sys.argv[2]
        os.environ.setdefault("AZUREML_MODEL_DIR", sys.argv[3] if len(sys.argv) > 3 else directory)
        sys.path.insert(0, directory)
        spec = importlib.util.spec_from_file_location("score", os.path.join(directory, entry))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "init"):
            module.init()
        result = module.run(sys.stdin.read())
        sys.stdout.write(result if isinstance(result, str) else json.dumps(result))
        """

    struct ScoringFailure: Error { let message: String }

    /// Runs one scoring request in a fresh interpreter, confined like a run (the model's files read-only, a scratch
    /// directory writable), with the server's environment filtered as for runs, and a 60-second limit.
    /// - Parameter modelDirectory: The model's files (`AZUREML_MODEL_DIR`) when they are not beside the script (v2).
    static func runScoring(sandbox: RunSandbox, directory: String, entry: String, input: [UInt8], modelDirectory: String? = nil) async -> Result<String, ScoringFailure> {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("aml-score-\(UUID().uuidString)")
        do { try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true) } catch {
            return .failure(ScoringFailure(message: "cannot create a scratch directory"))
        }
        defer { try? FileManager.default.removeItem(at: tmp) }
        let inPath = tmp.appendingPathComponent("in").path, outPath = tmp.appendingPathComponent("out").path
        let errPath = tmp.appendingPathComponent("err").path
        _ = FileManager.default.createFile(atPath: inPath, contents: Data(input))
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let stdin = open(inPath, O_RDONLY | O_CLOEXEC), stdout = open(outPath, O_WRONLY | O_CLOEXEC), stderr = open(errPath, O_WRONLY | O_CLOEXEC)
        defer { for fd in [stdin, stdout, stderr] where fd >= 0 { close(fd) } }
        guard stdin >= 0, stdout >= 0, stderr >= 0 else { return .failure(ScoringFailure(message: "cannot open scratch files")) }
        // Folders are kept resolved when registered or deployed: one that resolves elsewhere now has become a link
        // (a script replaced its output folder), and binding it would show the sandbox whatever it points at.
        for folder in [directory] + (modelDirectory.map { [$0] } ?? []) where ContainedPath.resolved(folder) != folder {
            return .failure(ScoringFailure(message: "\(folder) is no longer the folder it was registered as (a link?): refused"))
        }
        let work = tmp.appendingPathComponent("work")
        try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let (executable, arguments) = sandbox.command(["-c", harness, directory, entry] + (modelDirectory.map { [$0] } ?? []), directory: work.path,
                                                      readOnly: [directory] + (modelDirectory.map { [$0] } ?? []))
        let started: RunSandbox.Started
        do {
            started = try sandbox.spawn((executable, arguments), environment: RunExecutor.inheritedEnvironment(ProcessInfo.processInfo.environment),
                                        directory: sandbox.confined ? work.path : directory, input: stdin, output: stdout, error: stderr)
        } catch {
            return .failure(ScoringFailure(message: "the entry script could not start: \(error)"))
        }
        let child = started.process
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            child.signalGroup(SIGKILL)
        }
        let status = await child.wait().status
        watchdog.cancel()
        let oomKilled = started.cgroup?.oomKilled ?? false
        if let cgroup = started.cgroup { await cgroup.remove() }
        if oomKilled {
            return .failure(ScoringFailure(message: "killed: memory limit (\(sandbox.limits.memoryBytes >> 20) MiB)"))
        }
        guard status == 0 else {
            return .failure(ScoringFailure(message: "the entry script failed (exit \(status)): " + RunExecutor.tail(errPath, lines: 5)))
        }
        return .success(String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self))
    }
}
