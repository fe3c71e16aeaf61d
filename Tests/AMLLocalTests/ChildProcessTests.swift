import ChildProcess
import Foundation
import Testing

/// Git fetches, aml-local's runs and scoring start through `ChildProcess` (posix_spawn), not Foundation's Process.
@Suite struct ChildProcessTests {
    static let env = ["PATH": "/usr/bin:/bin"]

    /// Whatever the parent holds (a busy server has thousands of sockets; an ignored SIGPIPE), the child starts
    /// with descriptors 0-2 only, default signal dispositions, nothing blocked, and leads its own process group.
    @Test func aChildStartsCleanWhateverTheParentHolds() async throws {
        // Not close-on-exec: only the spawn's own closing keeps these from the child.
        let held = (0..<1500).map { _ in open("/dev/null", O_RDONLY) }
        defer { for fd in held where fd >= 0 { close(fd) } }
        #expect(held.allSatisfy { $0 >= 0 })
        let previous = signal(SIGPIPE, SIG_IGN)
        defer { signal(SIGPIPE, previous) }

        let script = """
            ls /proc/self/fd | tr '\\n' ' '; echo
            grep -E '^(SigIgn|SigBlk):' /proc/self/status
            echo "pid $$ group $(cut -d' ' -f5 /proc/$$/stat)"
            """
        let r = try await ChildProcess.run("/bin/sh", ["-c", script], environment: Self.env)
        #expect(r.termination == .exited(0), "\(r.output)")
        let lines = r.output.split(separator: "\n").map(String.init)
        // ls's own listing holds one descriptor (3) open while it reads.
        let fds = Set(lines.first?.split(separator: " ").map(String.init) ?? [])
        #expect(fds.isSubset(of: ["0", "1", "2", "3"]), "the child inherited descriptors: \(fds.sorted())")
        // The standard signals (1-31; glibc keeps 32 and 33 for itself): SIGPIPE and the rest at their defaults, and
        // nothing blocked (a blocked SIGTERM would make a cancel wait for the SIGKILL).
        func mask(_ name: String) -> UInt64? {
            lines.first { $0.hasPrefix(name + ":\t") }.flatMap { UInt64($0.dropFirst(name.count + 2), radix: 16) }
        }
        #expect(mask("SigIgn").map { $0 & 0x7fff_ffff } == 0, "\(r.output)")
        #expect(mask("SigBlk").map { $0 & 0x7fff_ffff } == 0, "\(r.output)")
        let ids = lines.last?.split(separator: " ") ?? []
        #expect(ids.count == 4 && ids[1] == ids[3], "the child leads its own process group: \(lines.last ?? "")")
    }

    /// A signal to the group reaches what the child started; once reaped, signalling is a no-op (its pid may be
    /// another process's by then).
    @Test func theGroupIsSignalledUntilTheChildIsReaped() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = try ChildProcess.spawn("/bin/sh", ["-c", "sleep 30 & echo $! > grandchild; wait"], environment: Self.env, directory: dir)
        var grandchild: pid_t?
        for _ in 0..<200 where grandchild == nil {
            grandchild = (try? String(contentsOfFile: dir + "/grandchild", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if grandchild == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        let sleeper = try #require(grandchild)
        #expect(child.isRunning)
        child.signalGroup(SIGTERM)
        #expect(await child.wait() == .signaled(SIGTERM))
        #expect(!child.isRunning && child.termination == .signaled(SIGTERM))
        var gone = false
        for _ in 0..<200 where !gone {
            gone = kill(sleeper, 0) != 0 || (try? String(contentsOfFile: "/proc/\(sleeper)/stat", encoding: .utf8))?.contains(") Z ") == true
            if !gone { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(gone, "the grandchild got the group's SIGTERM")
        child.signalGroup(SIGKILL)  // reaped: nothing is sent
        #expect(await child.wait() == .signaled(SIGTERM), "waiting again answers the same")
    }

    @Test func exitStatusesOutputAndAProgramThatCannotStart() async throws {
        let r = try await ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], environment: Self.env)
        #expect(r.termination == .exited(3) && r.termination.status == 3)
        #expect(r.output == "out\nerr\n")
        let quiet = try await ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2"], environment: Self.env, errors: false)
        #expect(quiet.output == "out\n")
        #expect(throws: ChildProcess.Failure.self) { try ChildProcess.spawn("/nonexistent/program", [], environment: Self.env) }
        do {
            _ = try ChildProcess.spawn("/bin/sh", ["-c", "true"], environment: Self.env, directory: "/nonexistent/dir")
            Issue.record("a missing directory starts nothing")
        } catch {
            #expect("\(error)".contains("/nonexistent/dir"))
        }
        #expect(try ChildProcess.spawn("/bin/true", [], environment: [:]).waitUntilExit() == .exited(0))
    }

    /// Many at once from many tasks while thousands of descriptors are open (where Foundation's Process read
    /// past readdir's buffer): every child runs and is reaped.
    @Test func manyConcurrentSpawnsWithThousandsOfDescriptorsOpen() async throws {
        let held = (0..<2000).map { _ in open("/dev/null", O_RDONLY | O_CLOEXEC) }
        defer { for fd in held where fd >= 0 { close(fd) } }
        let ended = try await withThrowingTaskGroup(of: ChildProcess.Termination.self) { group in
            for i in 0..<200 {
                group.addTask { try await ChildProcess.run("/bin/sh", ["-c", "exit \(i % 7)"], environment: Self.env).termination }
            }
            return try await group.reduce(into: [ChildProcess.Termination]()) { $0.append($1) }
        }
        #expect(ended.count == 200)
        var counts: [ChildProcess.Termination: Int] = [:]
        for e in ended { counts[e, default: 0] += 1 }
        for k in 0..<7 {
            let expected = (200 - k + 6) / 7
            #expect(counts[.exited(Int32(k))] == expected, "exit \(k)")
        }
    }
}
