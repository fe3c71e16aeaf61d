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
                    let w = ARMResourceView($0)
                    return [w.name.isEmpty ? "?" : w.name, w.provisioningState ?? "", w.location ?? ""]
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
                o.show(try await azure { try await api.computes() }, "NAME", "STATE", "NODES", "MIN", "MAX") { json in
                    let c = ComputeView(json)
                    return [c.name.isEmpty ? "?" : c.name, c.provisioningState ?? "", String(c.currentNodes ?? 0), String(c.minNodes ?? 0),
                            String(c.maxNodes ?? 0)]
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
                print(o.json ? c.text : "\(name): \(ComputeView(c).provisioningState ?? "?"), max \(max) nodes")
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
}
