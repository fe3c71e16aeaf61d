import ArgumentParser
import CProcessControl
import Dispatch
import Foundation
import NIOCore
import NIOPosix
import MLHookServer

/// The process entry point.
@main
enum Entry {
    static func main() {
        // Line by line when stdout is a pipe or a file (grep, tee, a CI log), not all at exit.
        mlhook_line_buffer_stdout()
        // Run Swift Concurrency's jobs on NIO's event loops, so a request is read, verified, stored and
        // answered without hopping between NIO's threads and the concurrency pool (measured with
        // bench/ingest.sh). NIO requires this first, on the main thread, once: hence a synchronous main.
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        Task {
            await run(AMLCommand.hoistingOptions(Array(CommandLine.arguments.dropFirst())))
            exit(0)
        }
        dispatchMain()
    }

    /// Parses and runs a command with the CLI's one convention for errors: `mlhook: …` on stderr, exit 2 for a
    /// usage error (ArgumentParser's own would be `Error: …` and 64), 1 for a failed operation; help and
    /// --version print to stdout and exit 0.
    static func run(_ arguments: [String]) async {
        var command: any ParsableCommand
        do {
            command = try MLHookCommand.parseAsRoot(arguments)
        } catch {
            let code = MLHookCommand.exitCode(for: error)
            guard code == .validationFailure else { MLHookCommand.exit(withError: error) }  // help, --version, dump-help
            var message = MLHookCommand.message(for: error)
            if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
            FileHandle.standardError.write(Data("mlhook: \(message)\n".utf8))
            let usage = MLHookCommand.fullMessage(for: error).components(separatedBy: "\n").filter { $0.hasPrefix("Usage:") || $0.contains("--help") }
            if !usage.isEmpty { FileHandle.standardError.write(Data((usage.joined(separator: "\n") + "\n").utf8)) }
            exit(2)
        }
        do {
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let error where error is ExitCode || MLHookCommand.exitCode(for: error) != .failure {
            MLHookCommand.exit(withError: error)  // an exit status of its own, or help
        } catch {
            // One form for every failure: `mlhook: …` on stderr, exit 1 (ArgumentParser's own is `Error: …`).
            FileHandle.standardError.write(Data("mlhook: \(OutboundHTTP.describe(error))\n".utf8))
            exit(1)
        }
    }
}
