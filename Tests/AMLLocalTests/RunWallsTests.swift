@testable import AMLLocal
import ChildProcess
import Foundation
import MLHookCore
import TestSupport
import Testing

/// Walls that hold whoever starts the server, root included: a run holds no capability, meets the seccomp filter,
/// cannot open the host's files by handle, and has kernel limits on processes, memory, file sizes, `/tmp` and its
/// folder.
@Suite struct RunWallsTests {
    /// The run's driver log, through its signed URL.
    func log(_ api: AMLClient, _ h: AMLHarness, _ token: String, _ runID: String) async throws -> String {
        let details = try await api.request(.get, "/history/v1.0/\(h.ws)/experiments/demo/runs/\(runID)/details", token: token).json
        let url = try #require(details.value(at: "logFiles")?.object["azureml-logs/70_driver_log.txt"]?.string)
        return try await api.request(.get, url.replacingOccurrences(of: "http://127.0.0.1:\(api.client.port!)", with: ""), token: nil).text
    }

    /// Starts `script` as a run and waits for its end. - Returns: the run and its log.
    func run(_ api: AMLClient, _ h: AMLHarness, _ script: String, arguments: [String] = []) async throws -> (run: JSONValue, log: String) {
        let token = try await api.accessToken()
        let args = arguments.map { "\"\($0)\"" }.joined(separator: ",")
        let start = try await api.startRun(token, files: ["probe.py": script],
                                           definition: #"{"configuration":{"script":"probe.py","arguments":[\#(args)],"target":"cpu-cluster"}}"#)
        let runID = try #require(start.json["runId"]?.string, "\(start.text)")
        let run = try await api.waitFor(token, run: runID, ["Completed", "Failed", "Canceled"])
        return (run, try await log(api, h, token, runID))
    }

    /// What a run's folder holds, with sizes (for a failure's message).
    static func listing(_ h: AMLHarness, _ run: JSONValue) -> String {
        let folder = h.dir.file("runs/\(run["runUuid"]?.string ?? "")")
        let names = (FileManager.default.enumerator(atPath: folder)?.allObjects as? [String]) ?? []
        return names.map { name -> String in
            let size = (try? FileManager.default.attributesOfItem(atPath: folder + "/" + name)[.size] as? Int) ?? -1
            return "\(name)=\(size)"
        }.joined(separator: ", ")
    }

    /// Python that gets a file's handle (name_to_handle_at) or opens one (open_by_handle_at) through ctypes.
    static let handleTool = """
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        class FH(ctypes.Structure):
            _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * 128)]
        def handle(path):
            fh = FH(); fh.handle_bytes = 128; mount = ctypes.c_int()
            if libc.name_to_handle_at(-100, path.encode(), ctypes.byref(fh), ctypes.byref(mount), 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            return fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]).hex()
        def read_by_handle(kind, hexbytes):
            raw = bytes.fromhex(hexbytes); fh = FH(); fh.handle_bytes = len(raw); fh.handle_type = kind
            ctypes.memmove(fh.f_handle, raw, len(raw))
            fd = libc.open_by_handle_at(os.open(".", os.O_RDONLY), ctypes.byref(fh), os.O_RDONLY)
            if fd < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            return os.read(fd, 200)
        """

    /// The escape found as root: with CAP_DAC_READ_SEARCH, open_by_handle_at on the bind-mounted run folder opens any
    /// file of the host's file system by its handle (here a secret beside the run folders, whose handle the test
    /// reads from outside). Now the run holds no capability at all, and the filter refuses both handle calls, mount,
    /// unshare, ptrace, bpf and keyctl.
    @Test func aRunHoldsNoCapabilityAndCannotOpenTheHostByHandle() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        let secret = "host-secret-\(UUID().uuidString)"
        try secret.write(toFile: h.dir.file("secret.txt"), atomically: false, encoding: .utf8)
        // The handle, taken outside any sandbox (as the attacker would compute or guess it).
        let made = try await ChildProcess.run("/usr/bin/env", ["python3", "-c", Self.handleTool + "\nprint(*handle(sys.argv[1]))", h.dir.file("secret.txt")],
                                              environment: ProcessInfo.processInfo.environment)
        let handle = made.output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        try #require(made.termination == .exited(0) && handle.count == 2, "\(made.output)")
        let script = Self.handleTool + """

            for line in open("/proc/self/status"):
                if line.startswith(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp:", "Uid")): print(line.strip())
            def attempt(what, f):
                try:
                    print(what, "OK", repr(f())[:200])
                except Exception as e:
                    print(what, "DENIED", type(e).__name__, getattr(e, "errno", ""))
            attempt("open_by_handle_at", lambda: read_by_handle(int(sys.argv[1]), sys.argv[2]))
            attempt("name_to_handle_at", lambda: handle("."))
            def syscall(number, *args):
                r = libc.syscall(number, *args)
                if r < 0: raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
                return r
            import platform
            x86 = platform.machine() == "x86_64"
            attempt("mount", lambda: syscall(165 if x86 else 40, b"none", b"/tmp", b"tmpfs", 0, None))
            attempt("unshare", lambda: syscall(272 if x86 else 97, 0x10000000))
            attempt("ptrace", lambda: syscall(101 if x86 else 117, 16, 1, None, None))
            attempt("keyctl", lambda: syscall(250 if x86 else 219, 0, 0))
            attempt("bpf", lambda: syscall(321 if x86 else 280, 0, None, 0))
            # The current value written back: harmless if it goes through (it did before /proc/sys was covered).
            current = open("/proc/sys/kernel/core_pattern").read()
            attempt("core_pattern", lambda: open("/proc/sys/kernel/core_pattern", "w").write(current))
            attempt("fork", lambda: __import__("subprocess").run(["true"]).returncode)
            """
        try await h.live { api in
            let (run, text) = try await run(api, h, script, arguments: handle)
            #expect(run["status"]?.string == "Completed", "\(run) \(text)")
            for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                #expect(text.contains("\(field):\t0000000000000000"), "\(field) is not empty: \(text)")
            }
            #expect(text.contains("NoNewPrivs:\t1") && text.contains("Seccomp:\t2"), "\(text)")
            #expect(!text.contains(secret), "the run read a host file by its handle: \(text)")
            for call in ["open_by_handle_at", "name_to_handle_at", "mount", "unshare", "ptrace", "keyctl", "bpf", "core_pattern"] {
                #expect(text.contains("\(call) DENIED"), "\(call) was not refused: \(text)")
            }
            // The filter leaves what a training script does alone: starting a program.
            #expect(text.contains("fork OK 0"), "\(text)")
        }
    }

    /// The filter is what bubblewrap loads: the architecture is checked first, clone3 answers ENOSYS, and every
    /// refused call's number leads to EPERM.
    @Test func theFilterRefusesEveryListedCallOnEachArchitecture() throws {
        // A tiny BPF interpreter for the instructions the filter uses.
        func verdict(_ program: [SeccompFilter.Instruction], arch: UInt32, nr: UInt32, arg0: UInt32 = 0) -> UInt32 {
            var a: UInt32 = 0, pc = 0
            while pc < program.count {
                let i = program[pc]
                switch i.code {
                case 0x20: a = i.k == 0 ? nr : i.k == 4 ? arch : i.k == 16 ? arg0 : 0
                case 0x15: pc += a == i.k ? Int(i.jt) : Int(i.jf)
                case 0x35: pc += a >= i.k ? Int(i.jt) : Int(i.jf)
                case 0x45: pc += a & i.k != 0 ? Int(i.jt) : Int(i.jf)
                case 0x06: return i.k
                default: Issue.record("unknown opcode \(i.code)"); return 0
                }
                pc += 1
            }
            Issue.record("the program ran off its end")
            return 0
        }
        for arch in [SeccompFilter.x86_64, SeccompFilter.aarch64] {
            let program = SeccompFilter.instructions(for: arch)
            let allow: UInt32 = 0x7FFF_0000, eperm: UInt32 = 0x0005_0000 | UInt32(EPERM), enosys: UInt32 = 0x0005_0000 | UInt32(ENOSYS)
            #expect(program.count < 200)
            for number in SeccompFilter.refused.compactMap({ arch.numbers[$0] }) { #expect(verdict(program, arch: arch.audit, nr: number) == eperm) }
            #expect(verdict(program, arch: arch.audit, nr: 0) == allow)  // read / io_setup: allowed
            #expect(verdict(program, arch: arch.audit, nr: arch.clone3) == enosys)
            #expect(verdict(program, arch: arch.audit, nr: arch.clone, arg0: 0x11) == allow)  // a plain fork
            #expect(verdict(program, arch: arch.audit, nr: arch.clone, arg0: 0x1000_0000) == eperm)  // CLONE_NEWUSER
            #expect(verdict(program, arch: 0x4000_0003, nr: 0) == eperm)  // i386 through int 0x80
            if arch.audit == 0xC000_003E { #expect(verdict(program, arch: arch.audit, nr: 0x4000_0000 | 304) == eperm) }  // x32
        }
    }

    /// The folder limit counts what files take on disk: a 1 MiB file is about 1 MiB (Foundation's fileAllocatedSize
    /// on Linux said 8 MiB, which stopped a run under its limit in CI).
    @Test func aRunFolderIsMeasuredAsTheDiskSpaceItsFilesTake() throws {
        let dir = try TemporaryDirectory("run-folder-size")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.file("outputs"), withIntermediateDirectories: true)
        try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: dir.file("outputs/model.bin")))
        try Data(repeating: 1, count: 100).write(to: URL(fileURLWithPath: dir.file("small.txt")))
        let size = RunExecutor.size(of: URL(fileURLWithPath: dir.path))
        #expect(size >= 1 << 20 && size < (1 << 20) + (256 << 10), "\(size)")
    }

    /// Small limits, each met by a script: processes, memory (the cgroup's OOM kill, reported as such), a file's
    /// size, /tmp, and the run's folder.
    @Test func runsMeetTheirKernelLimits() async throws {
        var limits = RunLimits()
        limits.processes = 40
        limits.memoryBytes = 96 << 20
        limits.fileBytes = 1 << 20
        limits.tmpBytes = 2 << 20
        limits.folderBytes = 6 << 20
        limits.folderCheckInterval = .milliseconds(200)
        let h = try AMLHarness(limits: limits)
        defer { h.dir.remove() }
        try await h.live { api in
            // Processes: as root RLIMIT_NPROC does not count; the cgroup does.
            let (forked, forkLog) = try await run(api, h, """
                import os, time
                started = 0
                try:
                    for _ in range(200):
                        if os.fork() == 0:
                            time.sleep(5); os._exit(0)
                        started += 1
                except OSError as e:
                    print("fork refused after", started, type(e).__name__)
                print("started", started)
                """)
            #expect(forked["status"]?.string == "Completed", "\(forked)")
            let started = forkLog.split(separator: "\n").first { $0.hasPrefix("started ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 999
            #expect(started < 40 && forkLog.contains("fork refused"), "\(forkLog)")

            // Memory: killed by the cgroup, and the run says why.
            let (hog, hogLog) = try await run(api, h, """
                chunks = []
                for i in range(64):
                    chunks.append(bytearray(16 << 20))
                    print("allocated", (i + 1) * 16, "MiB", flush=True)
                """)
            #expect(hog["status"]?.string == "Failed", "\(hog)")
            let message = hog.value(at: "error.error.message")?.string ?? hog.value(at: "error.message")?.string ?? "\(hog)"
            if RunCgroup.hierarchy.memory != nil {
                #expect(message.contains("killed: memory limit") && hogLog.contains("killed: memory limit"), "\(message) \(hogLog)")
            } else {
                #expect(hogLog.contains("MemoryError"), "\(message) \(hogLog)")  // RLIMIT_AS: the allocation fails instead
            }
            #expect(!hogLog.contains("allocated 256 MiB"), "\(hogLog)")

            // A file over the size limit, /tmp over its size, each refused by the kernel.
            let (files, fileLog) = try await run(api, h, """
                def attempt(what, f):
                    try:
                        f(); print(what, "OK")
                    except OSError as e:
                        print(what, "REFUSED", e.strerror)
                attempt("big-file", lambda: open("big.bin", "wb").write(b"x" * (3 << 20)))
                attempt("big-tmp", lambda: [open("/tmp/t%d" % i, "wb").write(b"x" * (900 << 10)) for i in range(4)])
                """)
            #expect(files["status"]?.string == "Completed", "\(files) \(fileLog) \(Self.listing(h, files))")
            #expect(fileLog.contains("big-file REFUSED File too large"), "\(fileLog)")
            #expect(fileLog.contains("big-tmp REFUSED No space left on device"), "\(fileLog)")

            // The run's folder: stopped once it holds more than folderBytes.
            let (disk, diskLog) = try await run(api, h, """
                import time
                for i in range(60):
                    open("part%d.bin" % i, "wb").write(b"x" * (900 << 10))
                    time.sleep(0.05)
                print("wrote everything")
                """)
            #expect(disk["status"]?.string == "Failed", "\(disk)")
            #expect(diskLog.contains("killed: disk limit") && !diskLog.contains("wrote everything"), "\(diskLog)")
        }
    }
}
