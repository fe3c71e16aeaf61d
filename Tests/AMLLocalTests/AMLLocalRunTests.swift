import AMLLocal
import Foundation
import HTTPTypes
import MLHookCore
import TestSupport
import Testing

/// Runs are real: python3 runs the uploaded script.
@Suite struct AMLLocalRunTests {
    static let hello = "import os, sys\nprint('Hello, REST!', sys.argv[1:], os.environ.get('GREETING'))\n"

    @Test(arguments: [
        // The article's PascalCase definition.
        #"{"Configuration":{"Script":"hello.py","Arguments":["234"],"SourceDirectoryDataStore":null,"Framework":"Python","Communicator":"None","Target":"cpu-cluster","MaxRunDurationSeconds":1200,"NodeCount":1,"Environment":{"Python":{"InterpreterPath":"python","UserManagedDependencies":false},"EnvironmentVariables":{"GREETING":"hi"}},"History":{"OutputCollection":true}}}"#,
        // The spec's camelCase.
        #"{"configuration":{"script":"hello.py","arguments":[234],"target":"cpu-cluster","environment":{"environmentVariables":{"GREETING":"hi"}}}}"#,
        // The SDK's Configuration around camelCase.
        #"{"TargetDetails":null,"Configuration":{"script":"hello.py","arguments":["234"],"target":"cpu-cluster","environment":{"environmentVariables":{"GREETING":"hi"}}},"TelemetryValues":null}"#,
    ])
    func aRunCompletesWithItsOutputInTheLogs(definition: String) async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let start = try await api.startRun(token, files: ["hello.py": Self.hello], definition: definition)
            #expect(start.status == .ok)
            let runID = try #require(start.json["runId"]?.string)
            let run = try await api.waitFor(token, run: runID, ["Completed", "Failed", "Canceled"])
            #expect(run["status"]?.string == "Completed", "\(run)")
            #expect(run["startTimeUtc"]?.string != nil && run["endTimeUtc"]?.string != nil)
            let details = try await api.request(.get, "/history/v1.0/\(h.ws)/experiments/demo/runs/\(runID)/details", token: token).json
            let url = try #require(details.value(at: "logFiles")?.object["azureml-logs/70_driver_log.txt"]?.string)
            // Log URLs are signed, like blob SAS URLs: no token needed.
            let log = try await api.request(.get, url.replacingOccurrences(of: "http://127.0.0.1:\(api.client.port!)", with: ""), token: nil)
            #expect(log.text.contains("Hello, REST! ['234'] hi"), "\(log.text)")
            // Flip the signature's last hex digit (always a change, whatever it was).
            let local = url.replacingOccurrences(of: "http://127.0.0.1:\(api.client.port!)", with: "")
            let flipped = local.dropLast() + (local.last == "0" ? "1" : "0")
            let tampered = try await api.request(.get, String(flipped), token: nil)
            #expect(tampered.status == .forbidden)
        }
    }

    /// Pruning deletes a finished run's project (code and outputs) and keeps its record and logs.
    @Test func pruningDeletesOldRunProjectsAndKeepsTheirRecords() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let start = try await api.startRun(token, files: ["hello.py": "print('hello')\n"],
                                               definition: #"{"configuration":{"script":"hello.py","target":"cpu-cluster"}}"#)
            let runID = start.json["runId"]?.string ?? ""
            let run = try await api.waitFor(token, run: runID, ["Completed", "Failed", "Canceled"])
            #expect(run["status"]?.string == "Completed")
            #expect(run["endTimeUtc"]?.string?.hasSuffix("Z") == true, "UTC with a zone, as Azure writes it")
            let runDir = h.dir.path + "/runs/" + (run["runUuid"]?.string ?? "?")
            #expect(FileManager.default.fileExists(atPath: runDir + "/project/hello.py"))
            #expect(try h.aml.pruneRuns(endedBefore: Date().addingTimeInterval(-86_400)) == 0, "ended just now")
            #expect(try h.aml.pruneRuns(endedBefore: Date().addingTimeInterval(60)) == 1)
            #expect(!FileManager.default.fileExists(atPath: runDir + "/project"))
            #expect(!FileManager.default.fileExists(atPath: runDir + "/project.zip"))
            let again = try await api.waitFor(token, run: runID, ["Completed"])
            #expect(again["status"]?.string == "Completed", "the record stays")
        }
    }

    @Test func aFailingScriptFailsWithItsExitCodeAndStderr() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let start = try await api.startRun(token, files: ["fail.py": "import sys\nprint('bad input', file=sys.stderr)\nsys.exit(3)\n"],
                                               definition: #"{"configuration":{"script":"fail.py","target":"cpu-cluster"}}"#)
            let run = try await api.waitFor(token, run: start.json["runId"]?.string ?? "", ["Completed", "Failed", "Canceled"])
            #expect(run["status"]?.string == "Failed")
            let message = run.value(at: "error.error.message")?.string ?? ""
            #expect(message.contains("exited with code 3") && message.contains("bad input"), "\(message)")
        }
    }

    /// Unconfined (`confinement: off`), the group kill still reaches the script's children.
    @Test func cancelKillsTheWholeProcessGroup() async throws {
        let h = try AMLHarness(confinement: .off)
        defer { h.dir.remove() }
        let pidFile = h.dir.file("child.pid")
        let script = "import subprocess, time\np = subprocess.Popen(['sleep', '60'])\nopen('\(pidFile)', 'w').write(str(p.pid))\ntime.sleep(60)\n"
        try await h.live { api in
            let token = try await api.accessToken()
            let start = try await api.startRun(token, files: ["spawn.py": script], definition: #"{"configuration":{"script":"spawn.py","target":"cpu-cluster"}}"#)
            let runID = start.json["runId"]?.string ?? ""
            _ = try await api.waitFor(token, run: runID, ["Running"])
            var childPID: Int32?
            for _ in 0..<200 where childPID == nil {
                childPID = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0) }
                try await Task.sleep(for: .milliseconds(25))
            }
            let child = try #require(childPID)
            #expect(kill(child, 0) == 0, "the child runs")
            let cancel = try await api.request(.post, "/execution/v1.0/\(h.ws)/experiments/demo/runId/\(runID)/cancel", token: token)
            #expect(cancel.status == .ok && cancel.json["runId"]?.string == runID)
            let run = try await api.waitFor(token, run: runID, ["Canceled", "Failed", "Completed"])
            #expect(run["status"]?.string == "Canceled")
            var gone = false
            for _ in 0..<100 where !gone {
                // A killed child is reaped by init; kill(pid, 0) then fails with ESRCH.
                gone = kill(child, 0) != 0
                if !gone { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(gone, "the script's child process was killed with its group")
        }
    }

    @Test func maxRunDurationIsEnforced() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let start = try await api.startRun(token, files: ["slow.py": "import time\ntime.sleep(60)\n"],
                                               definition: #"{"Configuration":{"Script":"slow.py","Target":"cpu-cluster","MaxRunDurationSeconds":1}}"#)
            let run = try await api.waitFor(token, run: start.json["runId"]?.string ?? "", ["Completed", "Failed", "Canceled"])
            #expect(run["status"]?.string == "Failed")
            #expect(run.value(at: "error.error.message")?.string?.contains("MaxRunDurationSeconds") == true)
        }
    }

    @Test func runsOnAComputeAreBoundedByItsMaxNodeCount() async throws {
        // Unconfined: the scripts wait for a gate file the test creates outside their directories.
        let h = try AMLHarness(provisioningDelay: 0, confinement: .off)
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let compute = "/subscriptions/\(h.c.subscriptionID)/resourceGroups/\(h.c.resourceGroup)/providers/Microsoft.MachineLearningServices/workspaces/\(h.c.workspace)/computes/cpu-cluster?api-version=2019-11-01"
            _ = try await api.request(.patch, compute, token: token, headers: [("Content-Type", "application/json")],
                                      body: Array(#"{"properties":{"scaleSettings":{"maxNodeCount":1}}}"#.utf8))
            let gate = h.dir.file("gate")
            let script = "import os, time\nwhile not os.path.exists('\(gate)'): time.sleep(0.02)\n"
            let def = #"{"configuration":{"script":"wait.py","target":"cpu-cluster"}}"#
            let a = try await api.startRun(token, files: ["wait.py": script], definition: def).json["runId"]?.string ?? ""
            let b = try await api.startRun(token, files: ["wait.py": script], definition: def).json["runId"]?.string ?? ""
            _ = try await api.waitFor(token, run: a, ["Running"])
            try await Task.sleep(for: .milliseconds(300))
            let queued = try await api.request(.get, "/history/v1.0/\(h.ws)/experiments/demo/runs/\(b)", token: token).json
            #expect(queued["status"]?.string == "Queued", "one node: the second run waits")
            #expect(try await api.request(.get, compute, token: token).json.value(at: "properties.properties.currentNodeCount")?.int == 1)
            // Scaling up changes real parallelism.
            _ = try await api.request(.patch, compute, token: token, headers: [("Content-Type", "application/json")],
                                      body: Array(#"{"properties":{"scaleSettings":{"maxNodeCount":2}}}"#.utf8))
            #expect(try await api.waitFor(token, run: b, ["Running"])["status"]?.string == "Running")
            FileManager.default.createFile(atPath: gate, contents: nil)
            #expect(try await api.waitFor(token, run: a, ["Completed"])["status"]?.string == "Completed")
            #expect(try await api.waitFor(token, run: b, ["Completed"])["status"]?.string == "Completed")
        }
    }

    @Test func aRunIDIsIdempotentAndExperimentsAreListedBothWays() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let def = #"{"configuration":{"script":"hello.py","target":"cpu-cluster"}}"#
            let first = try await api.startRun(token, files: ["hello.py": Self.hello], definition: def, runID: "job-42")
            let again = try await api.startRun(token, files: ["hello.py": Self.hello], definition: def, runID: "job-42")
            #expect(first.json["runId"]?.string == "job-42" && again.json["runId"]?.string == "job-42")
            _ = try await api.waitFor(token, run: "job-42", ["Completed"])
            let runs = try FileManager.default.contentsOfDirectory(atPath: h.dir.file("runs"))
            #expect(runs.count == 1, "the same runId never runs twice")
            _ = try await api.request(.post, "/history/v1.0/\(h.ws)/experiments/other", token: token)
            let listed = try await api.request(.get, "/history/v1.0/\(h.ws)/experiments?api-version=2019-11-01", token: token).json
            #expect(listed["value"]?.array?.compactMap { $0["name"]?.string } == ["demo", "other"])
            let page1 = try await api.request(.post, "/history/v1.0/\(h.ws)/experiments:query", token: token,
                                              headers: [("Content-Type", "application/json")], body: Array(#"{"top":1}"#.utf8)).json
            #expect(page1["value"]?.array?.count == 1 && page1["continuationToken"]?.string == "1")
            let page2 = try await api.request(.post, "/history/v1.0/\(h.ws)/experiments:query", token: token, headers: [("Content-Type", "application/json")],
                                              body: Array(#"{"top":1,"continuationToken":"1"}"#.utf8)).json
            #expect(page2["value"]?.array?.first?["name"]?.string == "other" && page2["continuationToken"] == .null)
        }
    }

    @Test func badUploadsGetTheirDocumentedErrors() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let def = #"{"configuration":{"script":"hello.py","target":"cpu-cluster"}}"#
            let slip = try await api.startRun(token, files: [:], definition: def, zip: try Zips.make(["../evil.py": "x", "hello.py": Self.hello]))
            #expect(slip.status == .badRequest && slip.text.contains("outside the project directory"))
            let absolute = try await api.startRun(token, files: [:], definition: def, zip: try Zips.make(["/etc/evil.py": "x"]))
            #expect(absolute.status == .badRequest)
            let link = try await api.startRun(token, files: [:], definition: def, zip: try Zips.make(["hello.py": Self.hello], symlinks: ["l": "/etc/passwd"]))
            #expect(link.status == .badRequest && link.text.contains("link"))
            let notZip = try await api.startRun(token, files: [:], definition: def, zip: Array("not a zip".utf8))
            #expect(notZip.status == .badRequest && notZip.text.contains("not a valid zip"))
            let noScript = try await api.startRun(token, files: ["hello.py": Self.hello], definition: #"{"configuration":{"target":"cpu-cluster"}}"#)
            #expect(noScript.status == .badRequest && noScript.json.value(at: "error.message")?.string?.contains("Script") == true)
            #expect(noScript.json.value(at: "error.code")?.string == "UserError")
            let unknown = try await api.startRun(token, files: ["hello.py": Self.hello], definition: #"{"configuration":{"script":"hello.py","target":"gpu-nope"}}"#)
            #expect(unknown.status == .badRequest && unknown.json.value(at: "error.innerError.code")?.string == "ComputeTargetNotFound")
            let missingFile = try await api.startRun(token, files: ["other.py": "x"], definition: def)
            #expect(missingFile.status == .badRequest && missingFile.text.contains("not in projectZipFile"))
            let malformed = try await api.request(.post, "/execution/v1.0/\(h.ws)/experiments/demo/startrun", token: token,
                                                  headers: [("Content-Type", "multipart/form-data; boundary=xyz")], body: Array("--xyz\r\ngarbage".utf8))
            #expect(malformed.status == .badRequest)
            #expect(!FileManager.default.fileExists(atPath: h.dir.file("../evil.py")))
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: h.dir.file("runs"))) ?? []
            #expect(runs.isEmpty, "a refused upload leaves nothing behind")
        }
    }
}
