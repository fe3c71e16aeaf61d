import AzureML
import ArgumentParser
import Foundation
import MLHookCore
import MLHookServer

/// `mlhook aml models …`: v1 and v2 model versions in one view.
extension AMLCommand {
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
                            let v = ModelVersionView(m)
                            rows.append(["id": .string("\(n):\(v.version)"), "api": "v2", "created": v.createdAt.map(JSONValue.string) ?? nil,
                                         "archived": .bool(v.isArchived), "location": v.modelURI.map(JSONValue.string) ?? nil, "model": m])
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
}
