import Foundation
import TestSupport
import Testing

/// `mlhook aml …` (the client CLI) against `mlhook aml-local`, both the real binary.
@Suite struct AMLCLITests {
    @Test func startWaitScaleAndModelsWithExitStatuses() async throws {
        let dir = try TemporaryDirectory("aml-cli")
        defer { dir.remove() }
        let aml = try await AMLLocalProcess.start(in: dir)
        defer { aml.process.signal(SIGTERM) }
        let creds = ["--credentials", aml.credentialsFile]
        try FileManager.default.createDirectory(atPath: dir.file("train"), withIntermediateDirectories: true)
        try "import sys\nprint('hello from', sys.argv[1:])\n".write(toFile: dir.file("train/hello.py"), atomically: true, encoding: .utf8)
        try "import sys\nsys.exit(4)\n".write(toFile: dir.file("train/bad.py"), atomically: true, encoding: .utf8)

        let ok = try await runMLHook(["aml", "runs", "start", "--experiment", "demo", "--dir", dir.file("train"), "--script", "hello.py",
                                "--arg", "234", "--compute", "cpu-cluster", "--wait"] + creds, directory: dir.path)
        #expect(ok.status == 0 && ok.output.contains("Completed") && ok.output.contains("hello from ['234']"), "\(ok.output)")
        let bad = try await runMLHook(["aml", "runs", "start", "--experiment", "demo", "--dir", dir.file("train"), "--script", "bad.py",
                                 "--compute", "cpu-cluster", "--wait"] + creds, directory: dir.path)
        #expect(bad.status == 3 && bad.output.contains("exited with code 4"), "a watched run that fails exits non-zero")
        let refused = try await runMLHook(["aml", "runs", "start", "--experiment", "demo", "--dir", dir.file("train"), "--script", "nope.py",
                                     "--compute", "cpu-cluster"] + creds, directory: dir.path)
        #expect(refused.status == 1 && refused.output.contains("not in projectZipFile"))

        let scale = try await runMLHook(["aml", "computes", "scale", "cpu-cluster", "--min", "0", "--max", "4"] + creds, directory: dir.path)
        #expect(scale.status == 0 && scale.output.contains("Succeeded"))
        let list = try await runMLHook(["aml", "computes", "ls", "--json"] + creds, directory: dir.path)
        #expect(list.output.contains("\"maxNodeCount\":4"))
        // The README's form: connection options before the subcommand.
        let first = try await runMLHook(["aml"] + creds + ["--json", "computes", "ls"], directory: dir.path)
        #expect(first.status == 0 && first.output.contains("\"maxNodeCount\":4"), "\(first.output)")
        #expect(try await runMLHook(["aml", "--credentials=\(aml.credentialsFile)", "computes", "ls"], directory: dir.path).output.contains("cpu-cluster"))
        let noModels = try await runMLHook(["aml", "models", "ls", "--json"] + creds, directory: dir.path)
        #expect(noModels.status == 0 && noModels.output.trimmingCharacters(in: .whitespacesAndNewlines) == "[]", "an empty list is [] like every list: \(noModels.output)")
        let reg = try await runMLHook(["aml", "models", "register", "--name", "m", "--url", "https://x/m.pkl", "--tag", "commit=9f1c"] + creds, directory: dir.path)
        #expect(reg.status == 0 && reg.output.contains("registered m:1"))
        #expect(try await runMLHook(["aml", "models", "ls"] + creds, directory: dir.path).output.contains("m:1\tv1\t"))
        // A folder that is not there: one line naming it, usage exit 2 (before: an NSCocoaErrorDomain dump).
        for command in [["runs", "start", "--experiment", "demo", "--script", "x.py", "--compute", "cpu-cluster"],
                        ["jobs", "submit", "--command", "python x.py", "--environment", "azureml:AzureML-sklearn-1.5@latest"]] {
            let missing = try await runMLHook(["aml"] + command + ["--dir", dir.file("nope")] + creds, directory: dir.path)
            #expect(missing.status == 2 && missing.output.trimmingCharacters(in: .whitespacesAndNewlines) == "mlhook: --dir \(dir.file("nope")): no such folder",
                    "\(missing.output)")
        }
        // runs show says what it prints: a tab-separated row (--json: the run).
        let shownRun = try await runMLHook(["aml", "runs", "show", "demo", ok.output.components(separatedBy: "started ").dropFirst().first?
                                                .components(separatedBy: " in ").first ?? ""] + creds, directory: dir.path)
        #expect(shownRun.status == 0 && shownRun.output.contains("\tCompleted\tcpu-cluster\t"), "\(shownRun.output)")
        let help = try await runMLHook(["aml", "runs", "show", "--help"], directory: dir.path)
        #expect(help.output.contains("tab-separated") && !help.output.contains("Show one run as JSON"), "\(help.output)")
        #expect(try await runMLHook(["aml", "models", "rm", "m:1"] + creds, directory: dir.path).status == 0)
        let again = try await runMLHook(["aml", "models", "rm", "m:1"] + creds, directory: dir.path)
        #expect(again.status == 0 && again.output.contains("m:1: no such model"), "already gone counts as done, and says so: \(again.output)")
        let missing = try await runMLHook(["aml", "models", "show", "m:1"] + creds, directory: dir.path)
        #expect(missing.status == 1 && missing.output.contains("notFound"))
        let noCreds = try await runMLHook(["aml", "groups", "ls", "--credentials", dir.file("nope.json")], directory: dir.path)
        #expect(noCreds.status == 2 && noCreds.output.contains("cannot read credentials"))
    }

    @Test func v2JobsSubmitStreamShowCancelAndModelVersions() async throws {
        let dir = try TemporaryDirectory("aml-cli-v2")
        defer { dir.remove() }
        let aml = try await AMLLocalProcess.start(in: dir)
        defer { aml.process.signal(SIGTERM) }
        let creds = ["--credentials", aml.credentialsFile]
        try FileManager.default.createDirectory(atPath: dir.file("train"), withIntermediateDirectories: true)
        try "import os, sys\nprint('v2 hello', sys.argv[1:])\nos.makedirs('outputs/model', exist_ok=True)\nopen('outputs/model/w', 'w').write('1')\n"
            .write(toFile: dir.file("train/train.py"), atomically: true, encoding: .utf8)
        let env = "azureml:AzureML-sklearn-1.5@latest"
        let ok = try await runMLHook(["aml", "jobs", "submit", "--dir", dir.file("train"), "--command", "python train.py --lr ${{inputs.lr}}", "--input", "lr=0.3",
                                "--environment", env, "--compute", "cpu-cluster", "--name", "cli_job_1", "--stream"] + creds, directory: dir.path)
        #expect(ok.status == 0 && ok.output.contains("v2 hello ['--lr', '0.3']") && ok.output.contains("cli_job_1: Completed"), "\(ok.output)")
        let show = try await runMLHook(["aml", "jobs", "show", "cli_job_1"] + creds, directory: dir.path)
        #expect(show.status == 0 && show.output.contains("cli_job_1\tCompleted\tmlhook-cli"), "\(show.output)")
        // The studio URL opens a page in a browser, no sign-in (it is signed like a log URL): status, command, log.
        // Before, it answered 401, and with a token 404.
        let studio = show.output.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\t").last ?? ""
        let (_, page) = try await runProcessAsync("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "--max-time", "10", studio])
        #expect(page.hasSuffix("\n200") && page.contains("<th>Status</th><td>Completed</td>") && page.contains("v2 hello [&#39;--lr&#39;, &#39;0.3&#39;]"),
                "\(studio): \(page.suffix(600))")
        let (_, forged) = try await runProcessAsync("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                                                       studio.replacingOccurrences(of: "sig=", with: "sig=x")])
        #expect(forged == "403")
        let bad = try await runMLHook(["aml", "jobs", "submit", "--dir", dir.file("train"), "--command", "python -c 'import sys; sys.exit(5)'",
                                 "--environment", env, "--stream"] + creds, directory: dir.path)
        #expect(bad.status == 3 && bad.output.contains("Failed") && bad.output.contains("exited with code 5"), "\(bad.output)")
        let long = try await runMLHook(["aml", "jobs", "submit", "--dir", dir.file("train"), "--command", "sleep 60", "--environment", env,
                                  "--name", "cli_long"] + creds, directory: dir.path)
        #expect(long.status == 0)
        #expect(try await runMLHook(["aml", "jobs", "cancel", "cli_long"] + creds, directory: dir.path).status == 0)
        let streamed = try await runMLHook(["aml", "jobs", "stream", "cli_long"] + creds, directory: dir.path)
        #expect(streamed.status == 3 && streamed.output.contains("cli_long: Canceled"), "\(streamed.output)")
        let reg = try await runMLHook(["aml", "models", "register", "--name", "cli-model", "--from-job", "cli_job_1", "--tag", "k=v"] + creds, directory: dir.path)
        #expect(reg.status == 0 && reg.output.contains("registered cli-model:1"), "\(reg.output)")
        #expect(try await runMLHook(["aml", "models", "archive", "cli-model:1"] + creds, directory: dir.path).output.contains("cli-model:1: archived"))
        // One models view: the v2 version is listed with no flag (it was invisible to `models ls`), and shown.
        let all = try await runMLHook(["aml", "models", "ls", "--tsv"] + creds, directory: dir.path)
        #expect(all.output.contains("cli-model:1\tv2\t"), "\(all.output)")
        let shownModel = try await runMLHook(["aml", "models", "show", "--v2", "cli-model:1"] + creds, directory: dir.path)
        #expect(shownModel.status == 0 && shownModel.output.contains("azureml://jobs/cli_job_1/"), "\(shownModel.output)")
        #expect(try await runMLHook(["aml", "models", "show", "cli-model:1"] + creds, directory: dir.path).output.contains("azureml://jobs/cli_job_1/"))
        let listed = try await runMLHook(["aml", "models", "ls", "--v2", "--name", "cli-model", "--tsv"] + creds, directory: dir.path)
        #expect(listed.output.contains("cli-model:1") && listed.output.contains("true") && listed.output.contains("azureml://jobs/cli_job_1/"), "\(listed.output)")
        let removed = try await runMLHook(["aml", "models", "rm", "--v2", "cli-model:1"] + creds, directory: dir.path)
        #expect(removed.status == 0 && removed.output.contains("cli-model:1: deleted"), "\(removed.output)")
        // One that is not there is done too (exit 0), and says so instead of "deleted".
        let absent = try await runMLHook(["aml", "models", "rm", "--v2", "nosuch:9"] + creds, directory: dir.path)
        #expect(absent.status == 0 && absent.output.contains("nosuch:9: no such model version") && !absent.output.contains("deleted"), "\(absent.output)")
        #expect(try await runMLHook(["aml", "models", "ls", "--v2", "--name", "cli-model", "--json"] + creds, directory: dir.path).output
            .trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
    }
}
