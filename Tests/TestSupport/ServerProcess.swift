import ChildProcess
import Foundation
import Synchronization

/// The real `mlhook` binary run as a child process, for tests that must kill it.
public final class ServerProcess: Sendable {
    private let process: ChildProcess
    private let output = OutputBuffer()
    /// The bound port, parsed from the "listening on" log line.
    public let port: Int

    /// The `mlhook` executable built beside the test bundle (`swift build --build-tests` builds both).
    public static func binary() throws -> String {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // Linux: .build/<triple>/debug/mlhookPackageTests.xctest is an executable file in the bin directory.
        if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
        let candidate = dir.appendingPathComponent("mlhook").path
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: candidate,
                NSLocalizedDescriptionKey: "mlhook binary not found at \(candidate); run swift build --build-tests first"])
        }
        return candidate
    }

    /// Starts `mlhook arguments…` and waits until it logs its listening address.
    public init(arguments: [String], environment: [String: String], directory: String, timeout: Duration = .seconds(60)) async throws {
        let (process, handle) = try startMLHook(arguments, environment: environment, directory: directory)
        self.process = process
        let sink = output
        // A plain thread: the read blocks, which must not happen on the cooperative pool.
        Thread.detachNewThread {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                sink.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        let deadline = ContinuousClock.now + timeout
        var found: Int?
        while found == nil, ContinuousClock.now < deadline {
            found = output.text.withLock { Self.listeningPort(in: $0) }
            if found == nil {
                guard process.isRunning else { break }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        guard let found else {
            process.signal(SIGTERM)
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "mlhook did not start: \(output.text.withLock { $0 })"])
        }
        port = found
    }

    static func listeningPort(in text: String) -> Int? {
        guard let r = text.range(of: "listening on http://") ?? text.range(of: "listening on https://") else { return nil }
        let rest = text[r.upperBound...]
        guard let colon = rest.firstIndex(of: ":") else { return nil }
        return Int(rest[rest.index(after: colon)...].prefix { $0.isNumber })
    }

    /// Everything the process wrote so far.
    public var log: String { output.text.withLock { $0 } }

    public var pid: Int32 { process.pid }

    /// Sends a signal (SIGKILL to crash it, SIGTERM to stop it).
    public func signal(_ sig: Int32) { process.signal(sig) }

    /// Waits for the process to exit and returns its status, or nil on timeout.
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
        // As a shell reports it: the exit status, or 128 + the signal.
        return process.termination?.status
    }

    deinit { process.signal(SIGKILL) }
}

/// Output collected by a reader thread.
final class OutputBuffer: Sendable {
    let text = Mutex("")
}

/// Runs the `mlhook` binary to completion without blocking a thread of the concurrency pool (two blocked
/// threads stall every test of the process on a 2-core machine); returns its exit status and output.
/// - Parameter terminal: Run it on a pseudo-terminal (util-linux `script`), as a person at a shell would.
public func runMLHook(_ arguments: [String], environment: [String: String] = [:], directory: String,
                      terminal: Bool = false) async throws -> (status: Int32, output: String) {
    guard terminal else { return try await runProcessAsync(try ServerProcess.binary(), arguments, environment: environment, directory: directory) }
    let line = ([try ServerProcess.binary()] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    let r = try await runProcessAsync("/usr/bin/script", ["-qefc", line, "/dev/null"], environment: environment, directory: directory)
    return (r.status, r.output.replacingOccurrences(of: "\r\n", with: "\n"))
}

/// Starts the `mlhook` binary with standard output and error on one pipe.
func startMLHook(_ arguments: [String], environment: [String: String], directory: String) throws -> (ChildProcess, FileHandle) {
    var ends: [Int32] = [0, 0]
    // Children started by ChildProcess inherit no descriptor beyond 0-2, so a plain pipe is not leaked to them.
    guard pipe(&ends) == 0 else { throw CocoaError(.fileWriteUnknown) }
    defer { close(ends[1]) }
    let child: ChildProcess
    do {
        child = try ChildProcess.spawn(try ServerProcess.binary(), arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                       directory: directory, output: ends[1], error: ends[1])
    } catch {
        close(ends[0])
        throw error
    }
    return (child, FileHandle(fileDescriptor: ends[0], closeOnDealloc: true))
}

/// Runs a program to completion without blocking a thread of the concurrency pool; its output (both streams) goes
/// to a file, not a pipe, so a daemon it starts cannot hold the output open.
/// - Parameter errors: Whether standard error is part of the output (else it is discarded).
public func runProcessAsync(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                            directory: String? = nil, errors: Bool = true) async throws -> (status: Int32, output: String) {
    let r = try await ChildProcess.run(executable, arguments, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                       directory: directory, errors: errors)
    return (r.termination.status, r.output)
}
