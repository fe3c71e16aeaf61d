import ChildProcess
import Foundation
import Logging
import MLHookCore
import Synchronization

/// Runs uploaded scripts for real with python3, with at most `maxNodeCount` runs executing at once per
/// compute; the others wait in Queued. Cancel and the run-duration limit kill the run's whole process group.
final class RunExecutor: Sendable {
    /// What a run inherits from the server's environment: the basics a Python program expects, never the rest.
    /// The server's environment holds webhook secrets, tokens and the Azure client secret; a training script
    /// from a pushed commit must not be able to read them. A run gets its own variables through its run
    /// definition (`Environment.EnvironmentVariables`).
    static let inheritedNames: Set<String> = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "PYTHONHOME",
                                              "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"]

    static func inheritedEnvironment(_ environment: [String: String]) -> [String: String] {
        environment.filter { inheritedNames.contains($0.key) }
    }

    /// A run ready to execute.
    struct Ticket: Sendable, Codable {
        let wsKey: String
        let runID: String
        let computeKey: String
        let directory: URL
        let script: String
        let arguments: [String]
        let environment: [String: String]
        let maxSeconds: Int?
        /// A v2 command line, run with `sh -c` (`python` being the server's interpreter) instead of `script`;
        /// its stdout and stderr go to one log.
        var command: String?
    }

    /// The compute key part that stands for serverless compute (v2 jobs with no `computeId`).
    static let serverless = "_serverless"
    /// How many serverless jobs run at once.
    static let serverlessCapacity = 4

    private struct State {
        var queue: [Ticket] = []
        var running: [String: Int] = [:]
        var processes: [String: ChildProcess] = [:]
        var canceling: Set<String> = []
        /// Runs taken from the queue whose process is not spawned yet.
        var starting: Set<String> = []
        var timedOut: Set<String> = []
        /// Runs stopped because their folder grew past `RunLimits.folderBytes`.
        var overDisk: Set<String> = []
        var stopping = false
        /// Runs the last stop cut short, to start again once the server listens (`resumeRecovered`).
        var recovered: [Ticket] = []
    }

    private let state = Mutex(State())
    private let runLock = Mutex(())
    let store: AMLLocalStore
    let settings: AMLLocalSettings
    let sandbox: RunSandbox
    let logger: Logger

    init(store: AMLLocalStore, settings: AMLLocalSettings, sandbox: RunSandbox, logger: Logger) {
        self.store = store
        self.settings = settings
        self.sandbox = sandbox
        self.logger = logger
    }

    /// Settles the runs the last stop left unfinished, before the server takes requests.
    ///
    /// A run the stop cut short (queued, preparing or running) starts again in its folder, as Azure ML restarts a
    /// job whose node went away: its log says so, and a script that checkpoints to `outputs/` finds what it wrote.
    /// At most `maxRestarts` times; then, and for a run recorded before runs kept their ticket, it fails. A run
    /// whose cancel was requested ends Canceled.
    func recover() throws {
        var resumed: [Ticket] = []
        for (scope, run) in try store.all("run") {
            guard let status = run["status"]?.string, !Self.terminal.contains(status), let id = run["runId"]?.string else { continue }
            let now = AMLLocalServer.now()
            if status == "CancelRequested" {
                try store.put("run", scope, id, run.setting("status", "Canceled").setting("endTimeUtc", .string(now)))
                continue
            }
            let restarts = (run["_restarts"]?.int ?? 0) + 1
            guard restarts <= Self.maxRestarts, let ticket = run["_ticket"].flatMap(Ticket.init(json:)),
                  FileManager.default.fileExists(atPath: ticket.directory.path) else {
                let why = restarts > Self.maxRestarts ? "; it was restarted \(Self.maxRestarts) times already" : ""
                try store.put("run", scope, id, run.setting("status", "Failed").setting("endTimeUtc", .string(now))
                    .setting("error", Self.error("ServiceError", "aml-local stopped while this run was \(status); it was not completed\(why).")))
                continue
            }
            Self.appendLog(Self.logPath(ticket), "\n--- aml-local stopped while this run was \(status); it starts again (restart \(restarts) of \(Self.maxRestarts)) ---\n")
            try store.put("run", scope, id, run.setting("status", "Queued").setting("_restarts", .number(Double(restarts))))
            resumed.append(ticket)
        }
        state.withLock { $0.recovered = resumed }
    }

    /// How many times a run cut short by a stop is started again.
    static let maxRestarts = 3

    /// Starts the runs `recover` found cut short (once: later calls find none).
    func resumeRecovered() {
        let tickets = state.withLock { s in
            defer { s.recovered = [] }
            return s.recovered
        }
        for t in tickets {
            logger.notice("aml-local: run \(t.runID) was cut short by the last stop; it starts again")
            submit(t)
        }
    }

    /// A run's driver log (stdout; a command job's whole log).
    static func logPath(_ t: Ticket) -> String {
        t.directory.deletingLastPathComponent().appendingPathComponent("logs/70_driver_log.txt").path
    }

    static let terminal: Set<String> = ["Completed", "Failed", "Canceled"]

    static func error(_ code: String, _ message: String) -> JSONValue {
        ["error": ["code": .string(code), "message": .string(message)]]
    }

    /// Reads, changes and writes a run under one lock, so concurrent transitions never lose each other.
    @discardableResult
    func update(_ wsKey: String, _ runID: String, _ change: (JSONValue) -> JSONValue?) -> JSONValue? {
        runLock.withLock { _ in
            guard let run = try? store.get("run", wsKey, runID), let next = change(run) else { return nil }
            do { try store.put("run", wsKey, runID, next) } catch { logger.error("aml-local: cannot save run \(runID): \(error)") }
            return next
        }
    }

    func submit(_ ticket: Ticket) {
        update(ticket.wsKey, ticket.runID) { run -> JSONValue? in
            // What it takes to start the run again after a stop, kept with it (not shown: `_` keys are private).
            let kept = run.setting("_ticket", ticket.json)
            return run["status"]?.string == "NotStarted" ? kept.setting("status", "Queued") : kept
        }
        state.withLock { $0.queue.append(ticket) }
        pump()
    }

    /// A compute's capacity or a slot changed: start what fits.
    func capacityChanged() { pump() }

    func running(on computeKey: String) -> Int { state.withLock { $0.running[computeKey] ?? 0 } }

    private func capacity(_ computeKey: String) -> Int {
        let parts = computeKey.split(separator: "/").map(String.init)
        if parts.count == 4, parts[3] == Self.serverless { return Self.serverlessCapacity }
        guard parts.count == 4, let c = try? store.get("compute", parts[0...2].joined(separator: "/"), parts[3]) else { return 0 }
        return c.value(at: "properties.properties.scaleSettings.maxNodeCount")?.int ?? 0
    }

    private func pump() {
        let computes = Set(state.withLock { $0.queue.map(\.computeKey) })
        let caps = Dictionary(uniqueKeysWithValues: computes.map { ($0, capacity($0)) })
        let start: [Ticket] = state.withLock { s in
            var started: [Ticket] = []
            var remaining: [Ticket] = []
            if s.stopping { return started }
            for t in s.queue {
                if (s.running[t.computeKey] ?? 0) < (caps[t.computeKey] ?? 0) {
                    s.running[t.computeKey, default: 0] += 1
                    s.starting.insert(t.wsKey + "/" + t.runID)
                    started.append(t)
                } else {
                    remaining.append(t)
                }
            }
            s.queue = remaining
            return started
        }
        for t in start { Task { await self.execute(t) } }
    }

    /// Stops every run's process group and starts nothing more; the runs are marked Failed at the next start.
    func shutdown() {
        let children = state.withLock { s -> [ChildProcess] in
            s.stopping = true
            s.queue.removeAll()
            return Array(s.processes.values)
        }
        for child in children { child.signalGroup(SIGKILL) }
    }

    /// Cancels a queued or running run.
    /// - Returns: The run after the request.
    func cancel(_ wsKey: String, _ runID: String) -> JSONValue? {
        let key = wsKey + "/" + runID
        let (wasQueued, child): (Bool, ChildProcess?) = state.withLock { s in
            if let i = s.queue.firstIndex(where: { $0.wsKey == wsKey && $0.runID == runID }) {
                s.queue.remove(at: i)
                return (true, nil)
            }
            if let child = s.processes[key] {
                s.canceling.insert(key)
                return (false, child)
            }
            // Dequeued but not yet spawned (Preparing): remember the cancel, so execute kills the process as soon
            // as it exists instead of the request being lost.
            if s.starting.contains(key) { s.canceling.insert(key) }
            return (false, nil)
        }
        if wasQueued {
            return update(wsKey, runID) { $0.setting("status", "Canceled").setting("endTimeUtc", .string(AMLLocalServer.now())) }
        }
        if let child {
            let run = update(wsKey, runID) { $0.setting("status", "CancelRequested") }
            terminate(child)
            return run
        }
        return try? store.get("run", wsKey, runID)
    }

    /// SIGTERM to the run's process group, then SIGKILL if it is still there 2 s later (a process that ignores or has
    /// not yet set up its handling of SIGTERM, as bubblewrap while it builds the sandbox, is stopped all the same).
    private func terminate(_ child: ChildProcess) {
        child.signalGroup(SIGTERM)
        Task {
            try? await Task.sleep(for: .seconds(2))
            child.signalGroup(SIGKILL)  // nothing once it has been reaped: its pid may be another process's by then
        }
    }

    private func execute(_ t: Ticket) async {
        let key = t.wsKey + "/" + t.runID
        defer {
            state.withLock { s in
                s.starting.remove(key)
                s.running[t.computeKey, default: 1] -= 1
                s.processes[key] = nil
                s.canceling.remove(key)
                s.timedOut.remove(key)
                s.overDisk.remove(key)
            }
            pump()
        }
        update(t.wsKey, t.runID) { $0.setting("status", "Preparing").setting("startTimeUtc", .string(AMLLocalServer.now())) }
        let logs = t.directory.deletingLastPathComponent().appendingPathComponent("logs")
        let outPath = logs.appendingPathComponent("70_driver_log.txt").path
        let errPath = logs.appendingPathComponent("70_driver_stderr.txt").path
        try? FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        // A restarted run's logs go on from where the stop cut them.
        for path in [outPath, errPath] where !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        // Confined (RunSandbox): the script sees only its directory and the system, in its own PID namespace,
        // so nothing it starts outlives the group kill (the child leads its own process group).
        var (executable, arguments) = sandbox.command([t.script] + t.arguments, directory: t.directory.path)
        var path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        if let command = t.command {
            (executable, arguments) = sandbox.command(["/bin/sh", "-c", command], directory: t.directory.path, interpreter: false)
            // `python` and `python3` in the command are the server's interpreter, as a curated environment's are its own.
            let bin = t.directory.appendingPathComponent(".azureml-bin")
            try? FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
            for name in ["python", "python3"] {
                try? FileManager.default.createSymbolicLink(atPath: bin.appendingPathComponent(name).path, withDestinationPath: sandbox.interpreter)
            }
            path = bin.path + ":" + path
        }
        var env = Self.inheritedEnvironment(ProcessInfo.processInfo.environment)
        for (k, v) in t.environment { env[k] = v }
        env["AZUREML_RUN_ID"] = t.runID
        env["AZUREML_ARM_WORKSPACE_NAME"] = t.wsKey.split(separator: "/").last.map(String.init)
        env["PYTHONUNBUFFERED"] = "1"
        env["PATH"] = path

        // A command job writes one log (stdout and stderr together), as Azure's std_log.txt.
        let out = open(outPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        let err = t.command != nil ? out : open(errPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        defer {
            if out >= 0 { close(out) }
            if err >= 0 && err != out { close(err) }
        }
        guard out >= 0, err >= 0 else {
            finish(t, status: "Failed", error: Self.error("ServiceError", "cannot create log files"))
            return
        }
        let started: RunSandbox.Started
        do {
            started = try sandbox.spawn((executable, arguments), environment: env, directory: t.directory.path, output: out, error: err, logger: logger)
        } catch {
            logger.warning("aml-local: run \(t.runID) could not start: \(error)")
            finish(t, status: "Failed", error: Self.error("ServiceError", "could not start \(settings.interpreter)"))
            return
        }
        let child = started.process
        let alreadyCanceled = state.withLock { s -> Bool in
            s.processes[key] = child
            s.starting.remove(key)
            return s.canceling.contains(key)
        }
        update(t.wsKey, t.runID) { $0["status"]?.string == "Preparing" ? $0.setting("status", "Running") : $0 }
        if alreadyCanceled { terminate(child) }
        let limit = t.maxSeconds ?? settings.defaultMaxRunSeconds
        let watchdog = Task {
            try await Task.sleep(for: .seconds(limit))
            let stillRunning = self.state.withLock { s -> Bool in
                guard s.processes[key] === child, child.isRunning else { return false }
                s.timedOut.insert(key)
                return true
            }
            if stillRunning { child.signalGroup(SIGKILL) }
        }
        // No kernel limit exists for a folder's size without quotas: measure it while the run goes on.
        let folderWatch = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: sandbox.limits.folderCheckInterval)
                if Self.size(of: t.directory) > sandbox.limits.folderBytes {
                    let stillRunning = self.state.withLock { s -> Bool in
                        guard s.processes[key] === child, child.isRunning else { return false }
                        s.overDisk.insert(key)
                        return true
                    }
                    if stillRunning { child.signalGroup(SIGKILL) }
                    return
                }
            }
        }
        let status = await child.wait().status
        watchdog.cancel()
        folderWatch.cancel()
        let oomKilled = started.cgroup?.oomKilled ?? false
        if let cgroup = started.cgroup { await cgroup.remove() }
        let (canceled, timedOut, overDisk) = state.withLock { ($0.canceling.contains(key), $0.timedOut.contains(key), $0.overDisk.contains(key)) }
        let limits = sandbox.limits
        if canceled {
            finish(t, status: "Canceled", error: .null)
        } else if oomKilled {
            let message = "killed: memory limit (\(limits.memoryBytes >> 20) MiB): a process of the run used more memory than the limit allows."
            Self.appendLog(outPath, "\n" + message + "\n")
            finish(t, status: "Failed", error: Self.error("UserError", message))
        } else if overDisk {
            let message = "killed: disk limit (\(limits.folderBytes >> 20) MiB): the run's folder grew past the limit."
            Self.appendLog(outPath, "\n" + message + "\n")
            finish(t, status: "Failed", error: Self.error("UserError", message))
        } else if timedOut {
            finish(t, status: "Failed", error: Self.error("UserError",
                "The run exceeded MaxRunDurationSeconds (\(t.maxSeconds ?? settings.defaultMaxRunSeconds) s) and was stopped."))
        } else if status == 0 {
            update(t.wsKey, t.runID) { $0.setting("status", "Finalizing") }
            finish(t, status: "Completed", error: .null)
        } else {
            let tail = Self.tail(t.command != nil ? outPath : errPath, lines: 10)
            let what = t.command != nil ? "The command" : "Script \(t.script)"
            finish(t, status: "Failed", error: Self.error("UserError", "\(what) exited with code \(status)." + (tail.isEmpty ? "" : "\n" + tail)))
        }
    }

    private func finish(_ t: Ticket, status: String, error: JSONValue) {
        // After shutdown the run's fate is written by recover() at the next start, not by a dying process.
        guard !state.withLock({ $0.stopping }) else { return }
        update(t.wsKey, t.runID) { run in
            run.setting("status", .string(status)).setting("endTimeUtc", .string(AMLLocalServer.now())).setting("error", error)
        }
        logger.info("aml-local: run \(t.runID) \(status)")
    }

    /// The bytes the files under `directory` take on disk (`st_blocks` × 512, links not followed).
    ///
    /// Not Foundation's `fileAllocatedSize`: on Linux it multiplies `st_blocks` by the block size instead of 512, so
    /// a 1 MiB file counted as 8 MiB and a run was stopped for a disk limit it was far under (seen in CI).
    static func size(of directory: URL) -> Int {
        guard let walk = FileManager.default.enumerator(atPath: directory.path) else { return 0 }
        var total = 0
        var info = stat()
        for case let name as String in walk where lstat(directory.path + "/" + name, &info) == 0 {
            total += Int(info.st_blocks) * 512
        }
        return total
    }

    /// Appends a line of the server's to a run's log, so the reason a run was stopped stands where its user looks.
    static func appendLog(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = text.withCString { write(fd, $0, strlen($0)) }
    }

    /// The last `lines` lines of a file.
    static func tail(_ path: String, lines: Int) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        let text = String(decoding: data.suffix(16_384), as: UTF8.self)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1).joined(separator: "\n")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension RunExecutor.Ticket {
    var json: JSONValue { (try? JSONEncoder().encode(self)).flatMap { JSONValue(json: [UInt8]($0)) } ?? nil }

    init?(json: JSONValue) {
        guard let t = try? JSONDecoder().decode(Self.self, from: Data(json.text.utf8)) else { return nil }
        self = t
    }
}
