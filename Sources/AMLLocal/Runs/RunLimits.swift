import CProcessControl
import Foundation
import Logging
import MLHookCore

/// What the kernel allows one run or scoring process (with everything it starts): processes, memory, file sizes,
/// its `/tmp` and its folder. The defaults fit a small training run on a laptop or a CI machine.
public struct RunLimits: Sendable, Equatable {
    /// Processes and threads at once (a cgroup's `pids.max`; `RLIMIT_NPROC` too, which the kernel does not apply to
    /// uid 0, so as root only the cgroup counts).
    public var processes = 512
    /// Memory, in bytes (a cgroup's memory limit; where no cgroup is writable, `RLIMIT_AS`).
    public var memoryBytes = 4 << 30
    /// The largest file it may write, in bytes (`RLIMIT_FSIZE`).
    public var fileBytes = 2 << 30
    /// The size of its `/tmp` (a tmpfs, whose pages also count against the memory limit), in bytes.
    public var tmpBytes = 512 << 20
    /// The most its run folder may hold, in bytes: checked every `folderCheckInterval` while it runs, and the run is
    /// stopped past it (no kernel limit exists for a folder without quotas; `fileBytes` bounds each write).
    public var folderBytes = 10 << 30
    /// How often the folder's size is measured.
    public var folderCheckInterval: Duration = .seconds(2)

    public init() {}

    /// The limits a configuration (`azureml.local.limits`, sizes in MiB) sets.
    public init(_ config: LocalRunLimits) {
        processes = config.processes
        memoryBytes = config.memoryMB << 20
        fileBytes = config.fileMB << 20
        tmpBytes = config.tmpMB << 20
        folderBytes = config.folderMB << 20
    }

    /// The resource limits a confined child starts with.
    var resourceLimits: [(resource: Int32, value: UInt64)] {
        [(mlhook_rlimit_nproc, UInt64(processes)), (mlhook_rlimit_fsize, UInt64(fileBytes)), (mlhook_rlimit_core, 0)]
    }
}

/// The cgroups one confined child is put in (`pids` and `memory`), made under the server's own cgroup and removed
/// when the child has ended. Both cgroup v1 hierarchies and a delegated cgroup v2 subtree are used; where none is
/// writable (an unprivileged server without delegation), runs keep their rlimits only and the server says so at start.
final class RunCgroup: Sendable {
    /// The cgroup folders made for this child.
    let folders: [String]
    /// Their `cgroup.procs`, open for the child to join before it runs.
    let procs: [Int32]
    /// Where the memory controller counts OOM kills (v1 `memory.oom_control`, v2 `memory.events`).
    let oomFile: String?

    private init(folders: [String], procs: [Int32], oomFile: String?) {
        self.folders = folders
        self.procs = procs
        self.oomFile = oomFile
    }

    /// Whether the cgroup's memory limit killed a process.
    var oomKilled: Bool {
        guard let oomFile, let text = try? String(contentsOfFile: oomFile, encoding: .utf8) else { return false }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count)) ?? 0 > 0
        }
        return false
    }

    /// Closes the joins and removes the folders (a few tries: the kernel frees a cgroup once its last process is reaped).
    func remove() async {
        for fd in procs { close(fd) }
        for folder in folders {
            for _ in 0..<20 {
                if rmdir(folder) == 0 || errno == ENOENT { break }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Where cgroups can be made, found once per process.
    struct Hierarchy: Sendable {
        /// The folder new cgroups go in, per controller (`pids`, `memory`), and whether it is cgroup v2.
        let pids: String?
        let memory: String?
        let unified: Bool

        var usable: Bool { pids != nil || memory != nil }
    }

    static let hierarchy: Hierarchy = findHierarchy()

    /// Reads /proc/self/mounts and /proc/self/cgroup: v1 `pids` and `memory` hierarchies where they are mounted and
    /// writable, else a cgroup v2 folder whose `cgroup.subtree_control` already enables them (a delegated subtree).
    static func findHierarchy() -> Hierarchy {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        let membership = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? ""
        var paths: [String: String] = [:]  // controller ("" for v2) → our path in it
        for line in membership.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            for controller in parts[1].split(separator: ",") { paths[String(controller)] = String(parts[2]) }
            if parts[1].isEmpty { paths[""] = String(parts[2]) }
        }
        var v1: [String: String] = [:], v2: String?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 4 else { continue }
            if f[2] == "cgroup2" { v2 = String(f[1]) }
            if f[2] == "cgroup" {
                for option in f[3].split(separator: ",") where option == "pids" || option == "memory" { v1[String(option)] = String(f[1]) }
            }
        }
        func made(_ mount: String, _ path: String) -> String? {
            let folder = (mount + (path == "/" ? "" : path) + "/mlhook-runs")
            if mkdir(folder, 0o755) != 0 && errno != EEXIST { return nil }
            return access(folder, W_OK) == 0 ? folder : nil
        }
        let pids = v1["pids"].flatMap { m in paths["pids"].flatMap { made(m, $0) } }
        let memory = v1["memory"].flatMap { m in paths["memory"].flatMap { made(m, $0) } }
        if pids != nil || memory != nil { return Hierarchy(pids: pids, memory: memory, unified: false) }
        if let v2, let path = paths[""] {
            let own = v2 + (path == "/" ? "" : path)
            let enabled = ((try? String(contentsOfFile: own + "/cgroup.subtree_control", encoding: .utf8)) ?? "").split(separator: " ")
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            if enabled.contains("pids") && enabled.contains("memory"), access(own, W_OK) == 0 {
                return Hierarchy(pids: own, memory: own, unified: true)
            }
        }
        return Hierarchy(pids: nil, memory: nil, unified: false)
    }

    /// Makes the cgroups for one child under `limits`. - Returns: nil where no cgroup can be made here.
    static func make(_ limits: RunLimits, logger: Logger) -> RunCgroup? {
        let h = hierarchy
        guard h.usable else { return nil }
        let name = "run-" + UUID().uuidString.lowercased()
        var folders: [String] = [], procs: [Int32] = [], oomFile: String?
        func write(_ path: String, _ value: String) -> Bool {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return value.withCString { Foundation.write(fd, $0, strlen($0)) } >= 0
        }
        func join(_ folder: String) -> Bool {
            let fd = open(folder + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { return false }
            procs.append(fd)
            return true
        }
        var ok = true
        if h.unified, let base = h.pids {
            let folder = base + "/" + name
            ok = mkdir(folder, 0o755) == 0
            if ok { folders.append(folder) }
            ok = ok && write(folder + "/pids.max", String(limits.processes)) && write(folder + "/memory.max", String(limits.memoryBytes))
            _ = write(folder + "/memory.swap.max", "0")
            ok = ok && join(folder)
            oomFile = folder + "/memory.events"
        } else {
            if let base = h.pids {
                let folder = base + "/" + name
                ok = mkdir(folder, 0o755) == 0
                if ok { folders.append(folder) }
                ok = ok && write(folder + "/pids.max", String(limits.processes)) && join(folder)
            }
            if ok, let base = h.memory {
                let folder = base + "/" + name
                ok = mkdir(folder, 0o755) == 0
                if ok { folders.append(folder) }
                ok = ok && write(folder + "/memory.limit_in_bytes", String(limits.memoryBytes)) && join(folder)
                _ = write(folder + "/memory.memsw.limit_in_bytes", String(limits.memoryBytes))
                oomFile = folder + "/memory.oom_control"
            }
        }
        let cgroup = RunCgroup(folders: folders, procs: procs, oomFile: oomFile)
        guard ok else {
            logger.warning("aml-local: cannot make a cgroup for a run (\(String(cString: strerror(errno)))); it keeps its rlimits only")
            Task { await cgroup.remove() }
            return nil
        }
        return cgroup
    }
}
