import CProcessControl
import Foundation
import Synchronization

/// A child process started with posix_spawn (`mlhook_spawn`): the leader of its own process group, with only
/// descriptors 0-2, default signal dispositions and an empty signal mask. Replaces Foundation's `Process`, whose
/// Linux spawn lists /proc/self/fd in the parent and can read past readdir's buffer (see the shim).
///
/// A thread of its own waits for the child (waitpid), so awaiting the end blocks no thread of the concurrency pool.
public final class ChildProcess: Sendable {
    /// How the child ended.
    public enum Termination: Sendable, Hashable {
        case exited(Int32)
        case signaled(Int32)

        /// The exit status, or 128 + the signal, as a shell reports it.
        public var status: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public let pid: pid_t
    private let state = Mutex<State>(State())

    private struct State {
        var termination: Termination?
        var waiters: [CheckedContinuation<Termination, Never>] = []
        var blocked: [DispatchSemaphore] = []
    }

    /// Starts `executable` (an absolute path) with `arguments`.
    /// - Parameters:
    ///   - environment: The child's whole environment (nothing is inherited beyond it).
    ///   - directory: Its working directory (nil: ours).
    ///   - input, output, error: Descriptors that become its 0, 1 and 2 (nil: /dev/null). They stay open here: the
    ///     caller closes them once `spawn` returns.
    /// - Throws: `Failure` naming the program when it cannot be started (missing, not executable, no directory).
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String], directory: String? = nil,
                             input: Int32? = nil, output: Int32? = nil, error: Int32? = nil) throws -> ChildProcess {
        try start(executable, arguments, environment: environment, directory: directory, what: "") { pid, argv, envp in
            mlhook_spawn(pid, executable, argv, envp, directory, input ?? -1, output ?? -1, error ?? -1)
        }
    }

    /// The C strings a spawn takes (argv and envp, each ending in NULL), the spawn itself, and its error named.
    private static func start(_ executable: String, _ arguments: [String], environment: [String: String], directory: String?, what: String,
                              _ launch: (UnsafeMutablePointer<pid_t>, UnsafePointer<UnsafeMutablePointer<CChar>?>?,
                                         UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Int32) throws -> ChildProcess {
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = argv.withUnsafeBufferPointer { a in envp.withUnsafeBufferPointer { e in launch(&pid, a.baseAddress, e.baseAddress) } }
        guard rc == 0 else {
            throw Failure(description: "cannot start \(executable)\(what): \(String(cString: strerror(rc)))"
                          + (directory.map { " (in \($0))" } ?? ""))
        }
        return ChildProcess(pid: pid)
    }

    /// What the kernel holds a confined child to from its first instruction (`mlhook_spawn_confined`).
    public struct Confinement: Sendable {
        /// Resource limits (`RLIMIT_*`, soft and hard alike).
        public var limits: [(resource: Int32, value: UInt64)] = []
        /// Open `cgroup.procs` files of the cgroups the child joins before it runs.
        public var cgroups: [Int32] = []
        /// A descriptor the child gets as its descriptor 3 (bubblewrap's `--seccomp 3`).
        public var passed: Int32?

        public init(limits: [(resource: Int32, value: UInt64)] = [], cgroups: [Int32] = [], passed: Int32? = nil) {
            self.limits = limits
            self.cgroups = cgroups
            self.passed = passed
        }
    }

    /// Starts `executable` as `spawn` does, but inside `confinement`: its cgroups and limits hold before it runs, so
    /// nothing it starts escapes them.
    /// - Throws: `Failure` naming the program when it cannot be started, or the step that failed.
    public static func spawn(_ executable: String, _ arguments: [String], environment: [String: String], directory: String? = nil,
                             input: Int32? = nil, output: Int32? = nil, error: Int32? = nil, confinement: Confinement) throws -> ChildProcess {
        let resources = confinement.limits.map(\.resource), values = confinement.limits.map { CUnsignedLongLong($0.value) }
        return try start(executable, arguments, environment: environment, directory: directory, what: " confined") { pid, argv, envp in
            mlhook_spawn_confined(pid, executable, argv, envp, directory, input ?? -1, output ?? -1, error ?? -1, confinement.passed ?? -1,
                                  resources, values, Int32(resources.count), confinement.cgroups, Int32(confinement.cgroups.count))
        }
    }

    private init(pid: pid_t) {
        self.pid = pid
        let thread = Thread { [self] in
            var raw: Int32 = 0
            while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
            // WIFEXITED / WTERMSIG are macros Swift cannot call.
            let signal = raw & 0x7f
            let ended: Termination = signal == 0 ? .exited((raw >> 8) & 0xff) : .signaled(signal)
            let (waiters, blocked) = state.withLock { s in
                s.termination = ended
                defer { (s.waiters, s.blocked) = ([], []) }
                return (s.waiters, s.blocked)
            }
            for w in waiters { w.resume(returning: ended) }
            for b in blocked { b.signal() }
        }
        thread.stackSize = 256 << 10  // it only waits: a small stack, as there is one such thread per child
        thread.start()
    }

    /// Whether the child has not been reaped yet.
    public var isRunning: Bool { state.withLock { $0.termination == nil } }

    /// How it ended, once it has.
    public var termination: Termination? { state.withLock { $0.termination } }

    /// Waits for the child to end.
    public func wait() async -> Termination {
        await withCheckedContinuation { c in
            let ended = state.withLock { s -> Termination? in
                if s.termination == nil { s.waiters.append(c) }
                return s.termination
            }
            if let ended { c.resume(returning: ended) }
        }
    }

    /// Blocks the calling thread until the child ends: only for code that runs outside the concurrency pool (or
    /// once, at start-up).
    public func waitUntilExit() -> Termination {
        let semaphore = DispatchSemaphore(value: 0)
        if let ended = state.withLock({ s -> Termination? in
            if s.termination == nil { s.blocked.append(semaphore) }
            return s.termination
        }) { return ended }
        semaphore.wait()
        return state.withLock { $0.termination! }
    }

    /// Sends `signal` to the child's whole process group (it leads one), while it has not been reaped: after that
    /// its pid may belong to another process.
    public func signalGroup(_ signal: Int32) {
        state.withLock { s in if s.termination == nil { _ = kill(-pid, signal) } }
    }

    /// Sends `signal` to the child alone, while it has not been reaped.
    public func signal(_ signal: Int32) {
        state.withLock { s in if s.termination == nil { _ = kill(pid, signal) } }
    }
}

extension ChildProcess {
    /// Runs a program to completion, its output (both streams) in a temporary file rather than a pipe, so a daemon
    /// it leaves behind cannot hold the output open. - Returns: how it ended and what it printed.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String], directory: String? = nil,
                           errors: Bool = true) async throws -> (termination: Termination, output: String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-child-\(UUID().uuidString)").path
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd); unlink(path) }
        let child = try spawn(executable, arguments, environment: environment, directory: directory, output: fd, error: errors ? fd : nil)
        let ended = await child.wait()
        return (ended, String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self))
    }
}
