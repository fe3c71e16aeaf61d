import CProcessControl
import ChildProcess
import Foundation
import Logging
import Synchronization

/// How aml-local confines the code it runs (training scripts from pushed commits, scoring scripts).
public enum RunConfinement: String, Sendable, CaseIterable {
    /// bubblewrap when it is installed; otherwise unconfined, with a warning at start.
    case auto
    /// bubblewrap, or aml-local refuses to start.
    case required
    /// Unconfined: the run's process sees the machine as the server does (only for trusted code).
    case off
}

/// What network a confined run gets.
public enum RunNetwork: String, Sendable, CaseIterable {
    /// Its own network namespace with only its own loopback: no internet, and none of this machine's ports (the
    /// admin API, aml-local's API, a database).
    case isolated
    /// The machine's network, loopback included (for scripts that download data or packages).
    case host
}

/// Runs a script inside a bubblewrap sandbox: its own PID namespace (it sees no other process, so no
/// `/proc/<pid>/environ` of the server, and every process it starts dies with it, even after `setsid`), a fresh
/// `/proc`, `/dev` and `/tmp`, the system and the interpreter read-only, and nothing else of the file system but
/// its own directory (read-write). mlhook's state — the store, `.mlhook/secrets`, aml-local's data directory and
/// token key, the configuration — is not there to read.
///
/// Landlock would confine reads and writes from inside the process too, but not hide other processes or kill a
/// `setsid` daemon; a PID namespace does both, so bubblewrap is the mechanism (README, "Security").
struct RunSandbox: Sendable {
    /// The bubblewrap binary, when runs are confined.
    let bubblewrap: String?
    /// The interpreter's real path (a pyenv shim resolves to it), and the prefixes it needs read-only.
    let interpreter: String
    let prefixes: [String]
    /// Whether confined runs get their own network namespace.
    var network = RunNetwork.isolated
    /// What the kernel allows each run or scoring process.
    var limits = RunLimits()

    /// What the system offers: finds bubblewrap and resolves the interpreter once.
    /// - Throws: `SandboxUnavailable` when `required` and bubblewrap is missing or does not work here.
    static func prepare(_ confinement: RunConfinement, interpreter name: String, logger: Logger) throws -> RunSandbox {
        // What the system offers is asked once per process: resolving a pyenv shim and trying bubblewrap run
        // child processes and block the calling thread (hundreds of milliseconds).
        let key = "\(confinement.rawValue)|\(name)"
        if let known = cache.withLock({ $0[key] }) {
            if confinement == .required && !known.confined { throw SandboxUnavailable(description: "runs must be confined, but bubblewrap does not work here") }
            if confinement == .auto && !known.confined { logger.warning("aml-local: runs are NOT confined (bubblewrap does not work here): a script can read what the server can. Install bubblewrap.") }
            return known
        }
        let made = try probe(confinement, interpreter: name, logger: logger)
        cache.withLock { $0[key] = made }
        return made
    }

    private static let cache = Mutex<[String: RunSandbox]>([:])

    fileprivate static func probe(_ confinement: RunConfinement, interpreter name: String, logger: Logger) throws -> RunSandbox {
        let resolved = resolveInterpreter(name)
        guard confinement != .off else { return RunSandbox(bubblewrap: nil, interpreter: resolved.path, prefixes: resolved.prefixes) }
        // PATH first (a bubblewrap installed elsewhere, or a stand-in that `mlhook doctor` and the tests use to show a
        // sandbox that cannot confine), then where distributions put it.
        let searched = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/bwrap" }
        let candidate = (searched + ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]).first { FileManager.default.isExecutableFile(atPath: $0) }
        let sandbox = RunSandbox(bubblewrap: candidate, interpreter: resolved.path, prefixes: resolved.prefixes)
        let failure = candidate == nil ? "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)" : sandbox.probeFailure()
        guard let why = failure else { return sandbox }
        if confinement == .required {
            throw SandboxUnavailable(description: "runs must be confined (azureml.local.confinement: required), but \(why); "
                                     + "confinement: auto runs them unconfined instead (trusted code only)")
        }
        logger.warning("aml-local: runs are NOT confined (\(why)): a script can read what the server can. Install bubblewrap.")
        return RunSandbox(bubblewrap: nil, interpreter: resolved.path, prefixes: resolved.prefixes)
    }

    struct SandboxUnavailable: Error, CustomStringConvertible { let description: String }

    var confined: Bool { bubblewrap != nil }

    /// The executable and arguments that run `arguments` (after the interpreter) in `directory`.
    /// - Parameters:
    ///   - directory: The only path the code may write, and its working directory.
    ///   - readOnly: More paths it may read (a registered model's files).
    ///   - interpreter: Whether `arguments` follow the interpreter (false: `arguments[0]` is the program).
    func command(_ arguments: [String], directory: String, readOnly: [String] = [], interpreter useInterpreter: Bool = true) -> (executable: String, arguments: [String]) {
        let program = useInterpreter ? [interpreter] + arguments : arguments
        guard let bubblewrap else { return ("/usr/bin/env", program) }
        // No capability, whoever starts mlhook: a user namespace whose only uid is an unprivileged one (65534), every
        // capability dropped (as root bubblewrap keeps them all otherwise: CapEff 000001fffeffffff), no_new_privs
        // (bubblewrap always sets it), and the seccomp filter (descriptor 3, see `spawn`).
        var a = ["--die-with-parent", "--unshare-user", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--seccomp", "3",
                 "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--new-session"]
        if network == .isolated { a.append("--unshare-net") }
        a += ["--proc", "/proc"]
        // The user namespace maps the run's uid to the server's: as root, that is uid 0 outside, and /proc's root-owned
        // files stay writable to it without any capability (a run wrote the host's kernel.core_pattern). bubblewrap
        // covers /proc/sys only when it can write it before switching uids, so these are covered read-only here, as
        // container runtimes do.
        for entry in Self.procCovered { a += ["--ro-bind-try", "/proc/" + entry, "/proc/" + entry] }
        a += ["--dev", "/dev", "--size", String(limits.tmpBytes), "--tmpfs", "/tmp", "--ro-bind", "/usr", "/usr"]
        for top in ["/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: top) {
                a += ["--symlink", target, top]  // Debian: /bin -> usr/bin
            } else if FileManager.default.fileExists(atPath: top) {
                a += ["--ro-bind", top, top]
            }
        }
        for entry in Self.systemFiles { a += ["--ro-bind-try", entry, entry] }
        for p in prefixes + readOnly where !p.hasPrefix("/usr/") { a += ["--ro-bind", p, p] }
        a += ["--bind", directory, directory, "--chdir", directory, "--setenv", "HOME", directory, "--setenv", "TMPDIR", "/tmp"]
        return (bubblewrap, a + ["--"] + program)
    }

    /// What of /proc a run sees read-only (writable to uid 0 by file mode alone: sysctls, the SysRq trigger, IRQ
    /// affinity, ACPI wakeup, SCSI device add and remove).
    static let procCovered = ["sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi", "asound", "driver"]

    /// What of /etc a Python program needs: certificates, name resolution, users, time zone, loader cache.
    static let systemFiles = ["/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf",
                              "/etc/ld.so.conf.d", "/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf", "/etc/nsswitch.conf",
                              "/etc/passwd", "/etc/group", "/etc/localtime", "/etc/timezone", "/etc/mime.types", "/etc/protocols",
                              "/etc/services", "/etc/python3", "/etc/python3.11"]

    /// Why bubblewrap does not confine here (a container or a unit may forbid its namespaces), or nil when it does:
    /// the probe must hold no capability and run with no_new_privs under the seccomp filter.
    func probeFailure() -> String? {
        let probe = "import sys\nfor l in open('/proc/self/status'):\n    if l.startswith(('CapEff', 'CapPrm', 'Seccomp:', 'NoNewPrivs')): sys.stdout.write(l)"
        let command = command(["-c", probe], directory: FileManager.default.temporaryDirectory.path)
        let ended: ChildProcess.Termination, output: String
        do {
            (ended, output) = try Self.capture { fd in
                try spawn(command, environment: RunExecutor.inheritedEnvironment(ProcessInfo.processInfo.environment), output: fd, error: fd,
                          cgroup: false).process
            }
        } catch {
            return "\(bubblewrap ?? "bwrap") could not start (\(error))"
        }
        let said = output.split(separator: "\n").last.map { ": " + $0.prefix(300) } ?? ""
        guard ended == .exited(0) else { return "\(bubblewrap ?? "bwrap") cannot build a sandbox here (exit \(ended.status)\(said))" }
        guard Self.confines(output) else {
            return "\(bubblewrap ?? "bwrap") ran the probe without confining it (\(output.split(separator: "\n").joined(separator: ", ")))"
        }
        return nil
    }

    /// Whether a confined process's `/proc/self/status` lines show it confined: no capability, no_new_privs, a filter.
    static func confines(_ status: String) -> Bool {
        let fields = Dictionary(status.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
        }, uniquingKeysWith: { a, _ in a })
        return fields["CapEff"] == "0000000000000000" && fields["CapPrm"] == "0000000000000000" && fields["NoNewPrivs"] == "1"
            && fields["Seccomp"] == "2"
    }

    /// A started confined process, and the cgroup it counts in.
    struct Started: Sendable {
        let process: ChildProcess
        let cgroup: RunCgroup?
    }

    /// Starts a command made by `command(_:directory:)` under this sandbox's limits: its cgroup (processes, memory)
    /// and rlimits hold before it runs, and bubblewrap reads the seccomp filter from descriptor 3.
    /// - Parameter cgroup: Whether to make a cgroup (the start-up probe does not need one).
    /// - Throws: `ChildProcess.Failure` when it cannot start.
    func spawn(_ command: (executable: String, arguments: [String]), environment: [String: String], directory: String? = nil,
               input: Int32? = nil, output: Int32? = nil, error: Int32? = nil, cgroup useCgroup: Bool = true,
               logger: Logger? = nil) throws -> Started {
        var confinement = ChildProcess.Confinement(limits: limits.resourceLimits)
        let cgroup = useCgroup ? RunCgroup.make(limits, logger: logger ?? Logger(label: "aml-local")) : nil
        confinement.cgroups = cgroup?.procs ?? []
        if cgroup?.oomFile == nil { confinement.limits.append((mlhook_rlimit_as, UInt64(limits.memoryBytes))) }
        var filter: [Int32] = [-1, -1]
        defer { for fd in filter where fd >= 0 { close(fd) } }
        if confined {
            guard let program = SeccompFilter.nativeProgram else { throw ChildProcess.Failure(description: "no seccomp filter for this architecture") }
            guard pipe(&filter) == 0 else { throw ChildProcess.Failure(description: "cannot make a pipe: \(String(cString: strerror(errno)))") }
            let written = program.withUnsafeBytes { Foundation.write(filter[1], $0.baseAddress, $0.count) }
            close(filter[1])
            filter[1] = -1
            guard written == program.count else { throw ChildProcess.Failure(description: "cannot pass the seccomp filter") }
            confinement.passed = filter[0]
        }
        do {
            let process = try ChildProcess.spawn(command.executable, command.arguments, environment: environment, directory: directory,
                                                 input: input, output: output, error: error, confinement: confinement)
            return Started(process: process, cgroup: cgroup)
        } catch {
            if let cgroup { Task { await cgroup.remove() } }
            throw error
        }
    }

    /// The interpreter's executable and installation prefixes, asked of the interpreter itself (outside any
    /// sandbox: a pyenv shim is a shell script that would not find pyenv inside).
    static func resolveInterpreter(_ name: String) -> (path: String, prefixes: [String]) {
        guard let out = run("/usr/bin/env", [name, "-c", "import sys; print(sys.executable); print(sys.prefix); print(sys.base_prefix)"]) else {
            return (name, [])
        }
        let lines = out.split(separator: "\n").map(String.init)
        guard lines.count == 3, lines[0].hasPrefix("/") else { return (name, []) }
        return (lines[0], Array(Set([lines[1], lines[2]])).sorted())
    }

    /// Runs a command to completion. - Returns: its standard output, or nil when it failed.
    private static func run(_ executable: String, _ arguments: [String]) -> String? {
        guard let (ended, output) = try? capture({ fd in
            try ChildProcess.spawn(executable, arguments, environment: RunExecutor.inheritedEnvironment(ProcessInfo.processInfo.environment),
                                   output: fd)
        }), ended == .exited(0) else { return nil }
        return output
    }

    /// Starts a child with its output in a temporary file (never a pipe a daemon could hold), blocks until it ends,
    /// and reads the file back. Only for start-up, outside the concurrency pool's work.
    private static func capture(_ start: (Int32) throws -> ChildProcess) throws -> (ChildProcess.Termination, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("aml-probe-\(UUID().uuidString)").path
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ChildProcess.Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd); unlink(path) }
        let ended = try start(fd).waitUntilExit()
        return (ended, String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self))
    }
}

/// What `mlhook doctor` asks of this machine before aml-local runs anything: whether runs would be confined, and
/// which interpreter runs them.
public enum SandboxDiagnosis {
    /// - Returns: The bubblewrap that confines runs here (nil when none does) and why not, and the interpreter's
    ///   real path (or the name, when it does not run).
    public static func check(interpreter name: String = "python3") -> (bubblewrap: String?, problem: String?, interpreter: String) {
        do {
            let sandbox = try RunSandbox.probeRequired(interpreter: name)
            return (sandbox.bubblewrap, nil, sandbox.interpreter)
        } catch {
            return (nil, "\(error)", RunSandbox.resolveInterpreter(name).path)
        }
    }
}

extension RunSandbox {
    /// A fresh probe (not the per-process cache): confined, or `SandboxUnavailable` saying why not.
    static func probeRequired(interpreter name: String) throws -> RunSandbox {
        try probe(.required, interpreter: name, logger: Logger(label: "mlhook.doctor"))
    }
}
