import ArgumentParser
import Foundation
import Logging
import MLHookCore
import MLHookServer
import Signing
import Store

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the stored events.",
        subcommands: [List.self, Show.self]
    )

    /// The store of the configuration, opened through the same factory as `serve`; it must exist already.
    static func openStore(_ options: ConfigOption) async throws -> any MLHookStore {
        let loaded = try options.load()
        do {
            return try await MLHookRuntime.openStore(loaded.config.store, mustExist: true, background: false, logger: Logger(label: "mlhook.cli"))
        } catch let error as StoreError where error.code == .notFound {
            printError("no store at \(loaded.config.store) (has mlhook serve run with this configuration?)")
            throw ExitCode(1)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List events, newest first: id, source, kind, delivery id, state, received at.")
        @OptionGroup var options: StoreOption
        @Option(help: "Show at most N events (default: all).") var limit: Int?
        @Option(help: "Only events of this source.") var source: String?
        @Option(help: "Only events of this kind (the sender's event name: push, \"Push Hook\", /aml, …).") var kind: String?
        @Option(help: "Only events in this state (received, planned, ignored, done, failed).") var state: String?
        @OptionGroup var format: ListFormat

        func run() async throws {
            if let limit, limit < 1 { printError("--limit must be at least 1"); throw ExitCode(2) }
            var wanted: EventState?
            if let state {
                guard let s = EventState(rawValue: state) else {
                    printError("--state must be one of \(EventState.allCases.map(\.rawValue).joined(separator: ", "))")
                    throw ExitCode(2)
                }
                wanted = s
            }
            let store = try await options.open()
            let events = try await store.events(EventQuery(limit: limit, source: source, kind: kind, state: wanted))
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var listing = Listing("ID", "SOURCE", "KIND", "DELIVERY", "STATE", "RECEIVED")
            for e in events {
                listing.add([e.id, e.source, e.kind, e.deliveryID, e.state.rawValue, e.receivedAt.formatted(.iso8601)],
                            json: String(decoding: try encoder.encode(e), as: UTF8.self))
            }
            listing.print(format)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one event with its headers and body (or --json).")
        @OptionGroup var options: StoreOption
        @Argument(help: "The event id (evt_…).") var id: String
        @Flag(help: "Print one JSON object: the event's fields, headers, plan, explanation and body (as JSON when it is).") var json = false

        func run() async throws {
            let store = try await options.open()
            guard let e = try await store.event(id: id) else {
                printError("no event \(id)")
                throw ExitCode(1)
            }
            if json {
                let summary = JSONValue(json: Array(try ShowJSON.encoder.encode(e.summary))) ?? [:]
                let plan = e.plan.flatMap { JSONValue(json: Array($0.utf8)) } ?? nil
                let body = JSONValue(json: e.body) ?? .string(String(decoding: e.body, as: UTF8.self))
                print(summary.setting("headers", .object(e.headers.mapValues(JSONValue.string))).setting("content_type", .string(e.contentType))
                    .setting("plan", plan).setting("explanation", e.explanation.map(JSONValue.string) ?? nil).setting("body", body).text)
                return
            }
            let s = e.summary
            print("id:           \(s.id)")
            print("source:       \(s.source)")
            print("kind:         \(s.kind)")
            print("delivery id:  \(s.deliveryID)")
            print("state:        \(s.state.rawValue)")
            print("received at:  \(s.receivedAt.formatted(.iso8601))")
            print("content type: \(e.contentType)")
            print("headers:")
            for (k, v) in e.headers.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
            if let plan = e.plan,
               let actions = try? JSONDecoder().decode([PlannedAction].self, from: Data(plan.utf8)) {
                print("planned actions:")
                for a in actions { print("  \(a.rule)#\(a.index + 1) \(a.summary)") }
            }
            if let why = e.explanation { print("explanation:\n" + why.split(separator: "\n").map { "  \($0)" }.joined(separator: "\n")) }
            print("body (\(e.body.count) bytes):")
            if let obj = try? JSONSerialization.jsonObject(with: Data(e.body)),
               let pretty = try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
                print(String(decoding: pretty, as: UTF8.self))
            } else {
                print(String(decoding: e.body, as: UTF8.self))
            }
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "config", abstract: "Work with configuration files.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a configuration file, its secrets included; print every problem with file, line and key.")
        @Argument(help: "The YAML file (or --config FILE).") var file: String?
        @Option(help: "The YAML file, as every other command takes it.") var config: String?

        func run() async throws {
            guard let path = file ?? config else { printError("name the file: mlhook config check FILE (or --config FILE)"); throw ExitCode(2) }
            let loaded: LoadedConfig
            do { loaded = try ConfigLoader.load(path: path) } catch {
                printError("\(path) is invalid:\n\(error.description)")
                throw ExitCode(2)
            }
            for w in loaded.warnings { print("warning: \(w)") }
            do { try ConfigLoader.checkScaleOut(loaded.config) } catch {
                printError("\(path) is invalid:\n\(error.description)")
                throw ExitCode(2)
            }
            // Every secret that cannot be resolved, sources and the rest, each with its file and line.
            var issues: [ConfigIssue] = []
            do {
                _ = try MLHookRuntime.resolveSources(loaded.config, logger: Logger(label: "mlhook.check"),
                                                     environment: ProcessInfo.processInfo.environment, file: path)
            } catch { issues += error.issues }
            do { try MLHookRuntime.checkSecrets(loaded.config, file: path, environment: ProcessInfo.processInfo.environment) } catch {
                issues += error.issues
            }
            if !issues.isEmpty {
                printError("\(path): secrets cannot be resolved:\n\(ConfigError(issues).description)")
                throw ExitCode(2)
            }
            print("\(path): ok (\(loaded.config.sources.count) sources)")
        }
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the jobs planned events created; retry or cancel them.",
                                                    subcommands: [List.self, Show.self, Retry.self, Cancel.self])

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a job: a queued one fails now; a running or watching one has its Azure ML run canceled, and ends when the run has.")
        @OptionGroup var options: StoreOption
        @Argument(help: "The job id (job_…).") var id: String
        func run() async throws {
            let store = try await options.open()
            switch try await store.cancelJob(id: id, reason: JobCancellation.operatorReason) {
            case .canceled: print("\(id): canceled (it was queued; it will not run)")
            case .requested: print("\(id): its run is being canceled; the job ends failed when the run has (mlhook jobs show \(id))")
            case .ended(let state):
                printError("job \(id) is \(state.rawValue): nothing to cancel")
                throw ExitCode(1)
            case .notFound:
                printError("no job \(id)")
                throw ExitCode(1)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a failed or dead job again with a fresh set of attempts.")
        @OptionGroup var options: StoreOption
        @Argument(help: "The job id (job_…).") var id: String
        func run() async throws {
            let store = try await options.open()
            guard try await store.retryJob(id: id) else {
                if let job = try await store.job(id: id) {
                    printError("job \(id) is \(job.state.rawValue): only a failed or dead job can be retried")
                } else {
                    printError("no job \(id)")
                }
                throw ExitCode(1)
            }
            print("\(id): queued")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List jobs, newest first: id, state, rule#action, action, event, attempts.")
        @OptionGroup var options: StoreOption
        @Option(help: "Show at most N jobs (default: all).") var limit: Int?
        @Option(help: "Only jobs in this state (queued, running, watching, succeeded, failed, dead).") var state: String?
        @OptionGroup var format: ListFormat

        func run() async throws {
            var wanted: JobState?
            if let state {
                guard let s = JobState(rawValue: state) else { printError("--state must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))"); throw ExitCode(2) }
                wanted = s
            }
            let store = try await options.open()
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var listing = Listing("ID", "STATE", "RULE#ACTION", "ACTION", "EVENT", "ATTEMPTS")
            for j in try await store.jobs(limit: limit, state: wanted) {
                listing.add([j.id, j.state.rawValue, "\(j.rule)#\(j.actionIndex + 1)", j.action, j.eventID, "\(j.attempts)/\(j.maxAttempts)"],
                            json: String(decoding: try encoder.encode(j), as: UTF8.self))
            }
            listing.print(format)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job with its parameters and attempts (or --json).")
        @OptionGroup var options: StoreOption
        @Argument(help: "The job id (job_…).") var id: String
        @Flag(help: "Print one JSON object: {\"job\": …, \"attempts\": […]}, as the admin API answers.") var json = false

        func run() async throws {
            let store = try await options.open()
            guard let j = try await store.job(id: id) else { printError("no job \(id)"); throw ExitCode(1) }
            if json {
                struct Detail: Encodable { let job: JobRecord; let attempts: [JobAttempt] }
                print(String(decoding: try ShowJSON.encoder.encode(Detail(job: j, attempts: try await store.attempts(jobID: id))), as: UTF8.self))
                return
            }
            print("id:              \(j.id)\nstate:           \(j.state.rawValue)\nrule:            \(j.rule) (action \(j.actionIndex + 1): \(j.action))")
            print("event:           \(j.eventID)\nidempotency key: \(j.idempotencyKey)\nattempts:        \(j.attempts)/\(j.maxAttempts)")
            print("created at:      \(j.createdAt.formatted(.iso8601))")
            if j.retries > 0 { print("retried:         \(j.retries) time\(j.retries == 1 ? "" : "s") (each retry starts a new run)") }
            if let e = j.lastError { print("last error:      \(e)") }
            print("parameters:      \(j.parameters)")
            if let r = j.result { print("result:          \(r)") }
            for a in try await store.attempts(jobID: j.id) {
                print("attempt \(a.number):       \(a.startedAt.formatted(.iso8601)) → \(a.endedAt.formatted(.iso8601)) \(a.outcome.rawValue)" + (a.error.map { ": \($0)" } ?? ""))
            }
        }
    }
}

struct Callbacks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read queued, delivered and dead-lettered callbacks; replay them.",
                                                    subcommands: [List.self, Show.self, Replay.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "id, state, attempts, last status, url, job.")
        @OptionGroup var options: StoreOption
        @Option(help: "Only callbacks in this state: pending, delivered or dead.") var state: String?
        @Option(help: "Show at most N callbacks (default: all).") var limit: Int?
        @OptionGroup var format: ListFormat
        func run() async throws {
            var wanted: CallbackState?
            if let state {
                guard let s = CallbackState(rawValue: state) else { printError("--state must be pending, delivered or dead"); throw ExitCode(2) }
                wanted = s
            }
            let store = try await options.open()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var listing = Listing("ID", "STATE", "ATTEMPTS", "STATUS", "URL", "JOB")
            for c in try await store.callbacks(limit: limit, state: wanted) {
                listing.add([c.id, c.state.rawValue, "\(c.attempts)", c.lastStatus.map(String.init) ?? "-", c.url, c.jobID],
                            json: String(decoding: try encoder.encode(c), as: UTF8.self))
            }
            listing.print(format)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one callback: its target, state, attempts and body (or --json).")
        @OptionGroup var options: StoreOption
        @Argument(help: "The callback id (msg_…).") var id: String
        @Flag(help: "Print the callback as one JSON object.") var json = false
        func run() async throws {
            let store = try await options.open()
            guard let c = try await store.callback(id: id) else { printError("no callback \(id)"); throw ExitCode(1) }
            if json {
                print(String(decoding: try ShowJSON.encoder.encode(c), as: UTF8.self))
                return
            }
            print("id: \(c.id)\nstate: \(c.state.rawValue)\nattempts: \(c.attempts)\nurl: \(c.url)\njob: \(c.jobID)\nevent: \(c.eventID)")
            if let s = c.lastStatus { print("last status: \(s)") }
            if let e = c.lastError { print("last error: \(e)") }
            print("body: \(c.body)")
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deliver a callback again (a dead letter, or a delivered one).")
        @OptionGroup var options: StoreOption
        @Argument(help: "The callback id (msg_…).") var id: String
        func run() async throws {
            let store = try await options.open()
            guard try await store.replayCallback(id: id) else { printError("no callback \(id)"); throw ExitCode(1) }
            print("\(id): queued for delivery")
        }
    }
}

/// Where `events`, `jobs` and `callbacks` read: the configuration's store file, or with `--server` a running
/// mlhook's admin API.
struct StoreOption: ParsableArguments {
    @OptionGroup var config: ConfigOption
    @Option(help: "A running mlhook's base URL (http://host:port): use its admin API instead of the store file. The token comes from MLHOOK_ADMIN_TOKEN or --token-file.")
    var server: String?
    @Option(help: "A file holding the admin token (with --server).") var tokenFile: String?

    func open() async throws -> any OperatorView {
        guard let server else { return try await Events.openStore(config) }
        let token: String
        if let tokenFile {
            guard let data = FileManager.default.contents(atPath: tokenFile) else { printError("cannot read \(tokenFile)"); throw ExitCode(2) }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = ProcessInfo.processInfo.environment["MLHOOK_ADMIN_TOKEN"] ?? ""
        }
        guard !token.isEmpty else { printError("--server needs the admin token: set MLHOOK_ADMIN_TOKEN or pass --token-file"); throw ExitCode(2) }
        return AdminClient(baseURL: server, token: WebhookSecret(token))
    }
}

/// How the `show` commands print `--json`: dates in ISO 8601, keys sorted, URLs with their slashes.
enum ShowJSON {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
}
