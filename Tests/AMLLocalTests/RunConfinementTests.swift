import Foundation
#if canImport(Glibc)
import Glibc
#endif
import AMLLocal
import HTTPTypes
import MLHookCore
import TestSupport
import Testing

/// Code from a pushed commit runs confined (bubblewrap): it cannot read the server's state or other processes'
/// environments, cannot write outside its run, and nothing it starts outlives the run, even after `setsid`.
@Suite struct RunConfinementTests {
    /// The run's driver log, through its signed URL.
    func log(_ api: AMLClient, _ h: AMLHarness, _ token: String, _ runID: String) async throws -> String {
        let details = try await api.request(.get, "/history/v1.0/\(h.ws)/experiments/demo/runs/\(runID)/details", token: token).json
        let url = try #require(details.value(at: "logFiles")?.object["azureml-logs/70_driver_log.txt"]?.string)
        return try await api.request(.get, url.replacingOccurrences(of: "http://127.0.0.1:\(api.client.port!)", with: ""), token: nil).text
    }

    @Test func aScriptCannotReadTheServersStateOrOtherProcessesOrWriteOutsideItsRun() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        let tokenKey = try String(contentsOfFile: h.dir.file("token.key"), encoding: .utf8)
        // A secret in the server's environment (this process): no run may see it, through its environment or /proc.
        let marker = "marker-\(UUID().uuidString)"
        setenv("MLHOOK_CONFINEMENT_TEST_SECRET", marker, 1)
        let outside = h.dir.file("escaped.txt")
        let script = """
            import os
            def attempt(what, f):
                try:
                    print(what, "OK", repr(f())[:200])
                except Exception as e:
                    print(what, "DENIED", type(e).__name__)
            attempt("token.key", lambda: open("\(h.dir.file("token.key"))").read())
            attempt("state", lambda: os.listdir("\(h.dir.path)"))
            attempt("write-outside", lambda: open("\(outside)", "w").write("x"))
            attempt("write-tmp-parent", lambda: open("/tmp/mlhook-escape-\(UUID().uuidString)", "w").write("x"))
            environs = []
            for pid in os.listdir("/proc"):
                if pid.isdigit() and int(pid) != os.getpid():
                    try: environs.append(open("/proc/%s/environ" % pid, "rb").read())
                    except Exception: pass
            print("other-processes", len([p for p in os.listdir("/proc") if p.isdigit()]))
            print("environs", b"".join(environs)[:2000])
            open("inside.txt", "w").write("ok")
            print("write-inside OK")
            """
        try await h.live { api in
            let token = try await api.accessToken()
            let start = try await api.startRun(token, files: ["probe.py": script], definition: #"{"configuration":{"script":"probe.py","target":"cpu-cluster"}}"#)
            let runID = try #require(start.json["runId"]?.string)
            let run = try await api.waitFor(token, run: runID, ["Completed", "Failed", "Canceled"])
            #expect(run["status"]?.string == "Completed", "\(run)")
            let text = try await log(api, h, token, runID)
            #expect(text.contains("token.key DENIED") && !text.contains(tokenKey.prefix(16)), "\(text)")
            // The data directory as the script sees it holds nothing of the server's (only the path to its own run).
            let state = text.split(separator: "\n").first { $0.hasPrefix("state ") } ?? ""
            #expect(!state.contains("token.key") && !state.contains(".db") && !state.contains("credentials"), "\(state)")
            // A write outside its run lands in the sandbox's throwaway file system, never on the host.
            #expect(!FileManager.default.fileExists(atPath: outside), "\(text)")
            #expect(text.contains("write-inside OK"), "\(text)")
            // Its own PID namespace: bubblewrap's init and the script, nothing of the server's.
            let count = text.split(separator: "\n").first { $0.hasPrefix("other-processes") }.flatMap { Int($0.split(separator: " ").last ?? "") }
            #expect((count ?? 99) <= 3, "\(text)")
            #expect(!text.contains(marker) && !text.contains("MLHOOK_CONFINEMENT_TEST_SECRET"), "\(text)")
        }
    }

    /// A confined run has its own network namespace: the server's loopback ports (aml-local here; mlhook's admin API
    /// and a database in production) are not reachable from it, unless `network: host` says so.
    @Test(arguments: [RunNetwork.isolated, .host])
    func aScriptReachesTheServersPortsOnlyWithHostNetwork(network: RunNetwork) async throws {
        let h = try AMLHarness(network: network)
        defer { h.dir.remove() }
        try await h.live { api in
            let script = """
                import socket
                try:
                    socket.create_connection(("127.0.0.1", \(api.client.port!)), timeout=3).close()
                    print("loopback CONNECTED")
                except Exception as e:
                    print("loopback REFUSED", type(e).__name__)
                """
            let token = try await api.accessToken()
            let start = try await api.startRun(token, files: ["net.py": script], definition: #"{"configuration":{"script":"net.py","target":"cpu-cluster"}}"#)
            let runID = try #require(start.json["runId"]?.string)
            _ = try await api.waitFor(token, run: runID, ["Completed", "Failed", "Canceled"])
            let text = try await log(api, h, token, runID)
            #expect(text.contains(network == .isolated ? "loopback REFUSED" : "loopback CONNECTED"), "\(text)")
        }
    }

    @Test func nothingAScriptStartsOutlivesItsRunEvenAfterSetsid() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        // A daemon that leaves the script's session and process group and ignores SIGTERM, writing a heartbeat.
        let daemon = "import os, signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True:\\n    open('heartbeat', 'w').write(str(time.time()))\\n    time.sleep(0.05)\\n"
        let script = """
            import subprocess, sys, time
            open("daemon.py", "w").write("\(daemon)")
            subprocess.Popen(["setsid", sys.executable, "daemon.py"], start_new_session=True)
            time.sleep(float(sys.argv[1]))
            """
        try await h.live { api in
            let token = try await api.accessToken()
            // One run ends by itself right away; one is canceled.
            let quick = try await api.startRun(token, files: ["spawn.py": script],
                                               definition: #"{"configuration":{"script":"spawn.py","arguments":["1"],"target":"cpu-cluster"}}"#)
            let slow = try await api.startRun(token, files: ["spawn.py": script],
                                              definition: #"{"configuration":{"script":"spawn.py","arguments":["60"],"target":"cpu-cluster"}}"#)
            let quickID = try #require(quick.json["runId"]?.string), slowID = try #require(slow.json["runId"]?.string)
            #expect(try await api.waitFor(token, run: quickID, ["Completed", "Failed"])["status"]?.string == "Completed")
            _ = try await api.waitFor(token, run: slowID, ["Running"])
            try await Task.sleep(for: .milliseconds(500))  // the daemon writes its first heartbeats
            _ = try await api.request(.post, "/execution/v1.0/\(h.ws)/experiments/demo/runId/\(slowID)/cancel", token: token)
            #expect(try await api.waitFor(token, run: slowID, ["Canceled", "Failed", "Completed"])["status"]?.string == "Canceled")
            // Each run's heartbeat stops: read it, wait, read it again.
            let beats = (FileManager.default.enumerator(atPath: h.dir.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix("/heartbeat") }
            #expect(beats.count == 2, "\(beats)")
            try await Task.sleep(for: .milliseconds(300))
            let before = beats.map { try? String(contentsOfFile: h.dir.file($0), encoding: .utf8) }
            try await Task.sleep(for: .milliseconds(500))
            let after = beats.map { try? String(contentsOfFile: h.dir.file($0), encoding: .utf8) }
            #expect(before == after, "a daemon is still writing its heartbeat")
        }
    }
}
