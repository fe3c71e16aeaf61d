import AzureML
import ArgumentParser
import Foundation
import MLHookCore
import MLHookServer

/// `mlhook aml runs …` (v1 script runs).
extension AMLCommand {
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
                let inputs = try keyValues(input, option: "--input")
                let code = try await azure { try await api.ensureCode(name: "mlhook-code", files: files) }
                let jobName = name ?? "mlhook_cli_\(Int(Date().timeIntervalSince1970 * 1000))"
                // The same request the submit_job action sends.
                var request = CommandJobRequest(command: command, codeID: code, environment: environment, experiment: experiment)
                request.inputs = inputs
                request.computeID = compute.map { api.v2ID("/computes/\($0)") }
                let job = try await azure { try await api.submitJob(name: jobName, properties: request.json) }
                if o.json && !stream { print(job.text); return }
                let view = CommandJobView(job)
                print("submitted \(jobName) (\(view.status))" + (view.studioURL.map { ", \($0)" } ?? ""))
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
                let v = CommandJobView(j)
                print(o.json ? j.text : "\(name)\t\(v.status)\t\(v.experiment ?? "")\t\(v.studioURL ?? "")")
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
