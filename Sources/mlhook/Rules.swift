import ArgumentParser
import Foundation
import MLHookCore
import MLHookServer

struct Rules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check rules and see which would match an event, and why not.",
        subcommands: [Check.self, Explain.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate the configuration's rules; print each rule with its conditions and actions.")
        @OptionGroup var options: ConfigOption

        func run() async throws {
            let config = try options.load().config
            for rule in config.rules {
                print("\(rule.name): \(rule.when.count) condition block(s), \(rule.actions.map(\.type.rawValue).joined(separator: ", "))")
            }
            print("\(options.config ?? "<embedded defaults>"): ok (\(config.rules.count) rules)")
        }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show every rule against one event: the rendered actions of a match, the first failing condition otherwise.",
            discussion: "Example: mlhook rules explain --config mlhook.yaml --source github --event push --payload push.json"
        )
        @OptionGroup var options: ConfigOption
        @Option(help: "The configured source name the event arrives at.") var source: String
        @Option(help: "The provider's event name (X-GitHub-Event, X-Gitlab-Event, X-Event-Key, or a Slack command).") var event: String
        @Option(help: "The payload file (JSON, or a form body for Slack).") var payload: String
        @Option(help: "Content type of the payload (default: by file content).") var contentType: String?

        func run() async throws {
            let config = try options.load().config
            guard let src = config.source(named: source) else {
                printError("no source named \(source) in the configuration (sources: \(config.sources.map(\.name).joined(separator: ", ")))")
                throw ExitCode(2)
            }
            guard let data = FileManager.default.contents(atPath: payload) else {
                printError("cannot read \(payload)")
                throw ExitCode(2)
            }
            let body = [UInt8](data)
            let type = contentType ?? (body.first(where: { $0 > 0x20 }) == UInt8(ascii: "{") ? "application/json" : "application/x-www-form-urlencoded")
            let e = EventNormalizer.normalize(.init(source: src.name, sourceType: src.type, providerEvent: event,
                                                    deliveryID: "explain", contentType: type, body: body))
            print(EventDescription.summary(e))
            print("")
            print(Planner.plan(e, rules: config.rules).explanation)
        }
    }
}
