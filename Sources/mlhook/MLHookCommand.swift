import ArgumentParser
import Foundation
import Logging
import MLHookCore
import MLHookServer
import Store


struct MLHookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mlhook",
        abstract: "Signed webhooks in, Azure Machine Learning operations out.",
        version: "mlhook \(MLHookVersion.current)",
        subcommands: [Serve.self, Init.self, Doctor.self, Send.self, Events.self, Jobs.self, Callbacks.self, Rules.self, ConfigCommand.self, StoreCommand.self, AMLCommand.self, AMLLocalCommand.self]
    )
}

/// Options shared by commands that read the configuration.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The YAML configuration file (default: the embedded defaults).")
    var config: String?

    /// Loads the configuration or exits with status 2 after printing every problem.
    /// - Parameter environment: Variables that override the process's (`serve --listen` is `MLHOOK_LISTEN`).
    func load(environment extra: [String: String] = [:]) throws -> LoadedConfig {
        do {
            return try ConfigLoader.load(path: config, environment: ProcessInfo.processInfo.environment.merging(extra) { $1 })
        } catch {
            printError("configuration is invalid:\n\(error.description)")
            throw ExitCode(2)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data("mlhook: \(text)\n".utf8))
}

/// Sets up swift-log once, from the configuration.
func bootstrapLogging(_ log: LogConfig) -> Logger {
    let level = Logger.Level(rawValue: log.level.rawValue) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StandardErrorLogHandler(label: label, format: log.format)
        handler.logLevel = level
        return handler
    }
    return Logger(label: "mlhook")
}

/// The version `mlhook --version` prints.
enum MLHookVersion {
    static let current = "0.6.0"
}
