import CProcessControl
import Dispatch
import Foundation
import NIOCore
import NIOPosix

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
            await MLHookCommand.main(AMLCommand.hoistingOptions(Array(CommandLine.arguments.dropFirst())))
            exit(0)
        }
        dispatchMain()
    }
}
