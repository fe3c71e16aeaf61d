import AzureML
import ArgumentParser
import Foundation
import MLHookCore
import MLHookServer

/// `mlhook aml …`: the REST article's calls, made friendly.
struct AMLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aml",
        abstract: "Talk to Azure ML (or the local server): groups, workspaces, computes, experiments, runs (v1), jobs (v2), models.",
        discussion: """
            Credentials, first found wins: --credentials FILE (the credentials.json aml-local writes), the environment \
            (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, \
            AZUREML_WORKSPACE_NAME), or --config FILE (azureml.cloud, or in local mode the embedded server's credentials.json); \
            with none of these, the embedded defaults' server: ./.mlhook/aml-local/credentials.json.
            """,
        subcommands: [Groups.self, Workspaces.self, Computes.self, Experiments.self, Runs.self, Jobs.self, Models.self]
    )

    /// `mlhook aml --credentials F runs start …` as well as `mlhook aml runs start … --credentials F`: the
    /// connection options (`--credentials`, `--config`, `--json`) given right after `aml` move to the end, where
    /// every `aml` command reads them.
    static func hoistingOptions(_ arguments: [String]) -> [String] {
        guard arguments.first == "aml" else { return arguments }
        var moved: [String] = []
        var i = 1
        while i < arguments.count {
            let a = arguments[i]
            if a == "--json" || a == "--tsv" {
                moved.append(a)
                i += 1
            } else if ["--credentials", "--config"].contains(a), i + 1 < arguments.count {
                moved += [a, arguments[i + 1]]
                i += 2
            } else if a.hasPrefix("--credentials=") || a.hasPrefix("--config=") {
                moved.append(a)
                i += 1
            } else {
                break
            }
        }
        return ["aml"] + arguments[i...] + moved
    }
}

/// Connection options shared by every `mlhook aml` command.
struct AMLOptions: ParsableArguments {
    @Option(help: "A credentials.json (tenant_id, client_id, client_secret, subscription_id, resource_group, workspace, base_url).")
    var credentials: String?
    @Option(help: "An mlhook configuration whose azureml section says where Azure ML is.") var config: String?
    @Flag(help: "Print JSON for scripts (a list: one JSON array, [] when empty).") var json = false
    @Flag(help: "Lists: tab-separated rows without a header, as when the output is piped.") var tsv = false

    func client() throws -> HTTPAzureMLClient {
        do {
            return HTTPAzureMLClient(settings: try settings())
        } catch let e as ValidationError {
            printError(e.message)
            throw ExitCode(2)
        }
    }

    func settings() throws -> AzureMLSettings {
        if let credentials { return try Self.fromFile(credentials) }
        let env = ProcessInfo.processInfo.environment
        if let tenant = env["AZURE_TENANT_ID"], let client = env["AZURE_CLIENT_ID"], let secret = env["AZURE_CLIENT_SECRET"],
           let sub = env["AZURE_SUBSCRIPTION_ID"] {
            guard let rg = env["AZURE_RESOURCE_GROUP"] ?? env["AZUREML_RESOURCE_GROUP"], let ws = env["AZUREML_WORKSPACE_NAME"] ?? env["AZURE_ML_WORKSPACE"] else {
                throw ValidationError("AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE_NAME are needed with the AZURE_* credentials")
            }
            var s = AzureMLSettings(credential: .servicePrincipal(tenantID: tenant, clientID: client, secret: secret, v2: false),
                                    subscriptionID: sub, resourceGroup: rg, workspace: ws)
            if let authority = env["AZURE_AUTHORITY_HOST"] { s.authorityURL = authority.hasPrefix("http") ? authority : "https://" + authority }
            return s
        }
        let loaded: LoadedConfig
        do { loaded = try ConfigLoader.load(path: config) } catch {
            throw ValidationError("configuration is invalid:\n\(error.description)")
        }
        let az = loaded.config.azureml
        if az.mode == .local {
            let path = az.localDataDirectory + "/credentials.json"
            guard FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("no credentials: pass --credentials, set AZURE_* variables, or start mlhook serve / mlhook aml-local (which writes \(path))")
            }
            return try Self.fromFile(path)
        }
        do {
            guard let s = try AzureMLSettings.cloud(az.cloud, api: az.api) else {
                throw ValidationError("azureml.cloud needs tenant_id, client_id, client_secret, subscription_id, resource_group and workspace")
            }
            return s
        } catch let error as ConfigError {
            throw ValidationError(error.description)
        }
    }

    static func fromFile(_ path: String) throws -> AzureMLSettings {
        guard let data = FileManager.default.contents(atPath: path), let j = JSONValue(json: [UInt8](data)) else {
            throw ValidationError("cannot read credentials from \(path)")
        }
        func need(_ k: String) throws -> String {
            guard let v = j[k]?.string, !v.isEmpty else { throw ValidationError("\(path) has no \(k)") }
            return v
        }
        var s = AzureMLSettings(credential: .servicePrincipal(tenantID: try need("tenant_id"), clientID: try need("client_id"),
                                                              secret: try need("client_secret"), v2: false),
                                subscriptionID: try need("subscription_id"), resourceGroup: try need("resource_group"), workspace: try need("workspace"))
        if let base = j["base_url"]?.string, !base.isEmpty {
            s.authorityURL = base
            s.armURL = base
        }
        return s
    }

    /// Prints documents as JSON, or one human line each.
    /// Prints a list as every list command does (`Listing`).
    func show(_ items: [JSONValue], _ header: String..., columns: (JSONValue) -> [String]) {
        var listing = Listing(header: header)
        for item in items { listing.add(columns(item), json: item.text) }
        var format = ListFormat()
        format.json = json
        format.tsv = tsv
        listing.print(format)
    }
}

/// `--dir` must name a folder: a clear error (exit 2) instead of the file system's error dump.
func requireFolder(_ dir: String) throws {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isFolder) else { printError("--dir \(dir): no such folder"); throw ExitCode(2) }
    guard isFolder.boolValue else { printError("--dir \(dir) is a file, not a folder"); throw ExitCode(2) }
}

/// `key=value` options as a map. - Throws: exit status 2, naming the option, for one without `=`.
func keyValues(_ items: [String], option: String) throws -> [String: String] {
    var map: [String: String] = [:]
    for item in items {
        let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2 else { printError("\(option) takes key=value, got \(item)"); throw ExitCode(2) }
        map[kv[0]] = kv[1]
    }
    return map
}

/// Runs an Azure ML operation, turning its failure into a clear message and exit status 1.
func azure<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let e as AzureMLError {
        printError(e.description)
        throw ExitCode(1)
    } catch let e as SourceZipper.Failure {
        printError(e.description)
        throw ExitCode(2)
    }
}

extension AMLCommand {
    struct Groups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resource groups.", subcommands: [List.self], defaultSubcommand: List.self)
        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "ls", abstract: "List resource groups: name, location.")
            @OptionGroup var o: AMLOptions
            func run() async throws {
                let api = try o.client()
                o.show(try await azure { try await api.resourceGroups() }, "NAME", "LOCATION") { [$0["name"]?.string ?? "?", $0["location"]?.string ?? ""] }
            }
        }
    }

    struct Workspaces: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Workspaces.", subcommands: [List.self, Show.self], defaultSubcommand: List.self)
        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "ls", abstract: "List workspaces: name, state, location.")
            @OptionGroup var o: AMLOptions
            func run() async throws {
                let api = try o.client()
                o.show(try await azure { try await api.workspaces() }, "NAME", "STATE", "LOCATION") {
                    [$0["name"]?.string ?? "?", $0.value(at: "properties.provisioningState")?.string ?? "", $0["location"]?.string ?? ""]
                }
            }
        }
        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one workspace as JSON.")
            @OptionGroup var o: AMLOptions
            @Argument(help: "Workspace name (default: the configured one).") var name: String?
            func run() async throws {
                let api = try o.client()
                print(try await azure { try await api.workspace(name) }.text)
            }
        }
    }

    struct Computes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Compute clusters.", subcommands: [List.self, Scale.self, Remove.self], defaultSubcommand: List.self)
        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "ls", abstract: "List compute clusters: name, state, nodes, min, max.")
            @OptionGroup var o: AMLOptions
            func run() async throws {
                let api = try o.client()
                o.show(try await azure { try await api.computes() }, "NAME", "STATE", "NODES", "MIN", "MAX") { c in
                    let scale = c.value(at: "properties.properties.scaleSettings")
                    return [c["name"]?.string ?? "?", c.value(at: "properties.provisioningState")?.string ?? "",
                            String(c.value(at: "properties.properties.currentNodeCount")?.int ?? 0),
                            String(scale?["minNodeCount"]?.int ?? 0), String(scale?["maxNodeCount"]?.int ?? 0)]
                }
            }
        }
        struct Scale: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Change a cluster's node range; waits until it is applied.")
            @OptionGroup var o: AMLOptions
            @Argument(help: "The compute cluster.") var name: String
            @Option(help: "Fewest nodes kept (default: unchanged).") var min: Int?
            @Option(help: "Most nodes.") var max: Int
            @Option(help: "Idle seconds before scaling down.") var idleSeconds: Int?
            func run() async throws {
                let api = try o.client()
                let c = try await azure { try await api.scaleCompute(name, minNodes: min, maxNodes: max, idleSeconds: idleSeconds) }
                print(o.json ? c.text : "\(name): \(c.value(at: "properties.provisioningState")?.string ?? "?"), max \(max) nodes")
            }
        }
        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete (or --detach) a compute.")
            @OptionGroup var o: AMLOptions
            @Argument(help: "The compute.") var name: String
            @Flag(help: "Detach it from the workspace instead of deleting it.") var detach = false
            func run() async throws {
                let api = try o.client()
                try await azure { try await api.deleteCompute(name, detach: detach) }
                print("\(name): \(detach ? "detached" : "deleted")")
            }
        }
    }

    struct Experiments: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Experiments.", subcommands: [List.self], defaultSubcommand: List.self)
        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "ls", abstract: "List experiments: name, created.")
            @OptionGroup var o: AMLOptions
            func run() async throws {
                let api = try o.client()
                o.show(try await azure { try await api.experiments() }, "NAME", "CREATED") { [$0["name"]?.string ?? "?", $0["createdUtc"]?.string ?? ""] }
            }
        }
    }

    struct Models: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Registered models (v1 model management; --v2 for v2 model versions).",
            subcommands: [List.self, Show.self, Register.self, Archive.self, Remove.self], defaultSubcommand: List.self)
        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "ls", abstract: "List registered models, v1 and v2 together: id, api, created, archived, location.")
            @OptionGroup var o: AMLOptions
            @Option(help: "Only versions of this model.") var name: String?
            @Flag(help: "Only v2 model versions (ARM), archived ones included.") var v2 = false
            @Flag(help: "Only v1 models (model management).") var v1 = false
            func run() async throws {
                let api = try o.client()
                // One view: a model registered either way is listed (the sample's v2 model was invisible before).
                var rows: [JSONValue] = []
                if !v2 {
                    for m in try await azure({ try await api.models(name: name) }) {
                        rows.append(["id": m["id"] ?? nil, "api": "v1", "created": m["createdTime"] ?? nil, "archived": false, "location": m["url"] ?? nil,
                                     "model": m])
                    }
                }
                if !v1 {
                    var names = name.map { [$0] } ?? []
                    if name == nil { names = try await azure { try await api.modelNames() } }
                    for n in names {
                        for m in try await azure({ try await api.modelVersions(name: n, includeArchived: true) }) {
                            rows.append(["id": .string("\(n):\(m["name"]?.string ?? "?")"), "api": "v2", "created": m.value(at: "systemData.createdAt") ?? nil,
                                         "archived": m.value(at: "properties.isArchived") ?? false, "location": m.value(at: "properties.modelUri") ?? nil,
                                         "model": m])
                        }
                    }
                }
                o.show(rows, "ID", "API", "CREATED", "ARCHIVED", "LOCATION") {
                    [$0["id"]?.string ?? "?", $0["api"]?.string ?? "", $0["created"]?.string ?? "", $0["archived"]?.text ?? "false", $0["location"]?.string ?? ""]
                }
            }
        }
        struct Archive: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Archive (or --restore) a v2 model version.")
            @OptionGroup var o: AMLOptions
            @Argument(help: "name:version") var id: String
            @Flag(help: "Restore an archived version.") var restore = false
            func run() async throws {
                let api = try o.client()
                let parts = id.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { printError("archive takes name:version, got \(id)"); throw ExitCode(2) }
                let m = try await azure { try await api.archiveModelVersion(name: parts[0], version: parts[1], archived: !restore) }
                print(o.json ? m.text : "\(id): \(restore ? "restored" : "archived")")
            }
        }
        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one model version as JSON: v1, else v2 (--v2: v2 only).")
            @OptionGroup var o: AMLOptions
            @Argument(help: "name:version") var id: String
            @Flag(help: "A v2 model version (ARM).") var v2 = false
            func run() async throws {
                let api = try o.client()
                let parts = id.split(separator: ":", maxSplits: 1).map(String.init)
                if !v2, let m = try? await api.model(id) {
                    print(m.text)
                    return
                }
                if parts.count == 2, let m = try await azure({ try await api.modelVersion(name: parts[0], version: parts[1]) }) {
                    print(m.text)
                    return
                }
                printError("\(id): notFound: no such model\(v2 ? " version (v2)" : " (v1 or v2)")")
                throw ExitCode(1)
            }
        }
        struct Register: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Register a model (a new version of NAME) from a URL, or (v2) from a job's output.")
            @OptionGroup var o: AMLOptions
            @Option(help: "The model's name.") var name: String
            @Option(help: "Where its files are (https, or file:// for aml-local; with --v2 any model URI).") var url: String?
            @Option(name: .customLong("from-job"), help: "v2: a job whose output folder (--path) is the model.") var fromJob: String?
            @Option(help: "With --from-job: the output folder (default model).") var path = "model"
            @Flag(help: "A v2 model version (ARM).") var v2 = false
            @Option(help: "key=value, repeatable.") var tag: [String] = []
            func run() async throws {
                let api = try o.client()
                let tags = try keyValues(tag, option: "--tag").mapValues(JSONValue.string)
                if v2 || fromJob != nil {
                    guard let uri = fromJob.map({ "azureml://jobs/\($0)/outputs/artifacts/paths/\(path.hasSuffix("/") ? path : path + "/")" }) ?? url else {
                        printError("pass --from-job JOB or --url URI"); throw ExitCode(2)
                    }
                    let m = try await azure { try await api.registerModelV2(name: name, properties: ["modelType": "custom_model", "modelUri": .string(uri), "tags": .object(tags)]) }
                    print(o.json ? m.text : "registered \(name):\(m["name"]?.string ?? "?")")
                    return
                }
                guard let url else { printError("pass --url (or --from-job for a v2 model)"); throw ExitCode(2) }
                let m = try await azure { try await api.registerModel(["name": .string(name), "url": .string(url), "mimeType": "application/octet-stream", "kvTags": .object(tags)]) }
                print(o.json ? m.text : "registered \(m["id"]?.string ?? "?")")
            }
        }
        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete one model version (an absent one is reported, not an error).")
            @OptionGroup var o: AMLOptions
            @Argument(help: "name:version") var id: String
            @Flag(help: "A v2 model version (ARM).") var v2 = false
            func run() async throws {
                let api = try o.client()
                if v2 {
                    let parts = id.split(separator: ":", maxSplits: 1).map(String.init)
                    guard parts.count == 2 else { printError("rm takes name:version, got \(id)"); throw ExitCode(2) }
                    // As for v1: say whether there was one (an absent version still counts as deleted, exit 0).
                    let existed = await (try? api.modelVersions(name: parts[0], includeArchived: true))?
                        .contains { $0["name"]?.string == parts[1] } ?? false
                    try await azure { try await api.deleteModelVersion(name: parts[0], version: parts[1]) }
                    print(existed ? "\(id): deleted" : "\(id): no such model version (nothing to delete)")
                    return
                }
                let existed = await (try? api.model(id)) != nil
                try await azure { try await api.deleteModel(id) }
                print(existed ? "\(id): deleted" : "\(id): no such model (nothing to delete)")
            }
        }
    }

    struct Runs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Runs.", subcommands: [Start.self, Show.self, Cancel.self])

        struct Start: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Zip a folder and start a run; --wait follows it to the end and prints the log tail.")
            @OptionGroup var o: AMLOptions
            @Option(help: "The experiment the run belongs to.") var experiment: String
            @Option(help: "The folder to zip (its root holds the script).") var dir: String
            @Option(help: "The entry script, relative to --dir.") var script: String
            @Option(help: "A script argument, repeatable.") var arg: [String] = []
            @Option(help: "The compute cluster to run on.") var compute: String
            @Option(help: "Run id (default: experiment_<time>); the same id never runs twice.") var runId: String?
            @Flag(help: "Follow the run to its end, print its log tail, and exit non-zero unless it completed.") var wait = false

            func run() async throws {
                try requireFolder(dir)
                let api = try o.client()
                let zip = try await azure { try SourceZipper.zip(directory: URL(fileURLWithPath: dir)) }
                let id = runId ?? "\(experiment)_\(Int(Date().timeIntervalSince1970 * 1000))"
                let definition: JSONValue = ["Configuration": ["Script": .string(script), "Arguments": .array(arg.map { .string($0) }),
                                                               "Target": .string(compute)]]
                let started = try await azure { try await api.startRun(experiment: experiment, zip: zip, definition: definition, runID: id) }
                if !o.json { print("started \(started) in \(experiment)") }
                guard wait else {
                    if o.json { print(JSONValue.object(["runId": .string(started)]).text) }
                    return
                }
                var last = "Unknown"
                try await azure {
                    for try await status in api.watch(experiment: experiment, runID: started) {
                        last = status
                        if !o.json { print("\(Date().formatted(.iso8601))  \(status)") }
                    }
                }
                let details = try await azure { try await api.runDetails(experiment: experiment, runID: started) }
                if o.json {
                    print(details.text)
                } else if let url = details["logFiles"]?.object["azureml-logs/70_driver_log.txt"]?.string,
                          let data = try? await api.download(url) {
                    print("--- log tail ---")
                    print(String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).suffix(20).joined(separator: "\n"))
                }
                if last != "Completed" {
                    if let message = details.value(at: "error.error.message")?.string { printError("run \(started) \(last): \(message)") }
                    throw ExitCode(3)
                }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one run: id, status, target, start and end, tab-separated (--json: the whole run).")
            @OptionGroup var o: AMLOptions
            @Argument(help: "The run's experiment.") var experiment: String
            @Argument(help: "The run id.") var runId: String
            func run() async throws {
                let api = try o.client()
                let r = try await azure { try await api.run(experiment: experiment, runID: runId) }
                print(o.json ? r.text : "\(runId)\t\(r["status"]?.string ?? "?")\t\(r["target"]?.string ?? "")\t\(r["startTimeUtc"]?.string ?? "")\t\(r["endTimeUtc"]?.string ?? "")")
            }
        }

        struct Cancel: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Cancel a run.")
            @OptionGroup var o: AMLOptions
            @Argument(help: "The run's experiment.") var experiment: String
            @Argument(help: "The run id.") var runId: String
            func run() async throws {
                let api = try o.client()
                try await azure { try await api.cancelRun(experiment: experiment, runID: runId) }
                print("\(runId): cancel requested")
            }
        }
    }
}

extension AMLCommand {
    /// `mlhook aml jobs …`: Azure ML v2 command jobs.
    struct Jobs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Command jobs (v2): submit a folder, show, stream the log, cancel.",
                                                        subcommands: [Submit.self, Show.self, Stream.self, Cancel.self])

        static let terminal: Set<String> = ["Completed", "Failed", "Canceled"]

        struct Submit: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Upload a folder as a code asset (once per content) and submit a command job; --stream follows its log to the end.")
            @OptionGroup var o: AMLOptions
            @Option(help: "The folder whose files the command runs in.") var dir: String
            @Option(help: "The command line, such as \"python train.py --lr ${{inputs.lr}}\".") var command: String
            @Option(help: "The environment: azureml:NAME@latest, azureml://registries/azureml/environments/NAME/labels/latest, or an ARM id.")
            var environment: String
            @Option(help: "The compute cluster (default: serverless).") var compute: String?
            @Option(help: "A literal input name=value, repeatable (${{inputs.name}} in the command).") var input: [String] = []
            @Option(help: "The experiment.") var experiment = "mlhook-cli"
            @Option(help: "The job name (default: mlhook_cli_<time>); the same name is the same job.") var name: String?
            @Flag(help: "Follow the job to its end, print its log, and exit non-zero unless it completed.") var stream = false

            func run() async throws {
                try requireFolder(dir)
                let api = try o.client()
                let zip = try await azure { try SourceZipper.zip(directory: URL(fileURLWithPath: dir)) }
                let files = try await azure { try CodeFile.files(ofZip: zip) }
                let inputs = try keyValues(input, option: "--input").mapValues { v -> JSONValue in ["jobInputType": "literal", "value": .string(v)] }
                let code = try await azure { try await api.ensureCode(name: "mlhook-code", files: files) }
                let jobName = name ?? "mlhook_cli_\(Int(Date().timeIntervalSince1970 * 1000))"
                var body: JSONValue = ["jobType": "Command", "command": .string(command), "codeId": .string(code),
                                       "environmentId": .string(environment), "experimentName": .string(experiment), "inputs": .object(inputs)]
                if let compute { body = body.setting("computeId", .string(api.v2ID("/computes/\(compute)"))) }
                let job = try await azure { try await api.submitJob(name: jobName, properties: body) }
                if o.json && !stream { print(job.text); return }
                print("submitted \(jobName) (\(job.value(at: "properties.status")?.string ?? "?"))"
                      + (job.value(at: "properties.services.Studio.endpoint")?.string.map { ", \($0)" } ?? ""))
                if stream { try await Stream.follow(api, jobName, json: o.json) }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one job: name, status, experiment, studio URL (or --json).")
            @OptionGroup var o: AMLOptions
            @Argument(help: "The job name.") var name: String
            func run() async throws {
                let api = try o.client()
                let j = try await azure { try await api.job(name: name) }
                print(o.json ? j.text : "\(name)\t\(j.value(at: "properties.status")?.string ?? "?")\t\(j.value(at: "properties.experimentName")?.string ?? "")\t\(j.value(at: "properties.services.Studio.endpoint")?.string ?? "")")
            }
        }

        struct Stream: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print a job's log as it grows until the job ends; exit 3 unless it completed.")
            @OptionGroup var o: AMLOptions
            @Argument(help: "The job name.") var name: String
            func run() async throws { try await Self.follow(try o.client(), name, json: o.json) }

            /// Polls run history's details (as the SDK's `jobs.stream` does) and prints what the log gained since.
            static func follow(_ api: HTTPAzureMLClient, _ name: String, json: Bool) async throws {
                var printed = 0
                var status = "Unknown"
                var delay = 0.2
                while true {
                    let details = try await azure { try await api.jobDetails(name: name) }
                    status = details["status"]?.string ?? status
                    if !json, let url = details["logFiles"]?.object.sorted(by: { $0.key < $1.key }).first(where: { $0.key.hasPrefix("user_logs/std_log") })?.value.string
                        ?? details["logFiles"]?.object["azureml-logs/70_driver_log.txt"]?.string,
                       let data = try? await api.download(url), data.count > printed {
                        FileHandle.standardOutput.write(Data(data[printed...]))
                        printed = data.count
                    }
                    if terminal.contains(status) {
                        if json { print(details.text) } else { print("\(name): \(status)") }
                        if status != "Completed" {
                            if let message = details.value(at: "error.error.message")?.string { printError("job \(name) \(status): \(message)") }
                            throw ExitCode(3)
                        }
                        return
                    }
                    try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
                    delay = min(delay * 1.5, 5)
                }
            }
        }

        struct Cancel: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Cancel a job (waits for the cancel operation).")
            @OptionGroup var o: AMLOptions
            @Argument(help: "The job name.") var name: String
            func run() async throws {
                let api = try o.client()
                try await azure { try await api.cancelJob(name: name) }
                print("\(name): cancel requested")
            }
        }
    }
}
