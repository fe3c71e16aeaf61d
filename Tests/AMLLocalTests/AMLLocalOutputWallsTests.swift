@testable import AMLLocal
import ChildProcess
import Foundation
import HTTPTypes
import MLHookCore
import TestSupport
import Testing

/// What a job leaves behind, and the values it is given, stay data: an output that is a link to the host never
/// becomes a model's files, and `${{inputs.…}}` never closes the quotes a command put around it.
@Suite struct AMLLocalOutputWallsTests {
    func put(_ a: AMLClient, _ token: String, _ path: String, _ body: String) async throws -> AMLClient.Reply {
        try await a.request(.put, "/\(a.harness.ws)\(path)?api-version=2024-04-01", token: token, body: Array(body.utf8))
    }

    /// Before, `outputs/model` made a link to a host folder; registering the job's output made that folder the model's
    /// files, and a deployment then bind-mounted it into the scoring sandbox.
    @Test func aJobOutputThatLinksOutOfItsJobIsNotAModel() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        let host = h.dir.file("host-private")
        try FileManager.default.createDirectory(atPath: host, withIntermediateDirectories: true)
        try "secret".write(toFile: host + "/score.py", atomically: true, encoding: .utf8)
        try await h.live { a in
            let token = try await a.accessToken()
            // The job makes its outputs links to a host folder once it has been registered from (its path did not
            // exist yet: allowed).
            let job = try await put(a, token, "/jobs/linker", """
                {"properties":{"jobType":"Command","command":"sleep 1 && ln -s \(host) outputs/model && ln -s \(host) outputs/other && echo linked","environmentId":"azureml:e@latest"}}
                """)
            #expect(job.status == .created, "\(job.text)")
            let early = try await put(a, token, "/models/early/versions/1", #"{"properties":{"modelUri":"azureml://jobs/linker/outputs/artifacts/paths/model/"}}"#)
            #expect(early.status == .created, "\(early.text)")
            #expect(try await a.waitFor(token, run: "linker", ["Completed", "Failed"])["status"]?.string == "Completed")
            for path in ["model/", "model", "other/score.py", "outputs/model/"] {
                let model = try await put(a, token, "/models/m/versions/1", #"{"properties":{"modelUri":"azureml://jobs/linker/outputs/artifacts/paths/\#(path)"}}"#)
                #expect(model.status == .badRequest && model.text.contains("leaves its job's folder"), "\(path): \(model.text)")
            }
            let dotted = try await put(a, token, "/models/m/versions/1", #"{"properties":{"modelUri":"azureml://jobs/linker/outputs/artifacts/paths/../../../host-private/"}}"#)
            #expect(dotted.status == .badRequest, "\(dotted.text)")
            // The model registered early cannot be deployed now that its folder is a link.
            _ = try await put(a, token, "/onlineEndpoints/ep1", #"{"location":"local","properties":{"authMode":"Key"}}"#)
            let deploy = try await put(a, token, "/onlineEndpoints/ep1/deployments/blue", """
                {"location":"local","properties":{"model":"azureml:early:1","codeConfiguration":{"codeId":"azureml:nope:1","scoringScript":"score.py"}}}
                """)
            #expect(deploy.status == .badRequest, "\(deploy.text)")
            // Output names are names: no path in them.
            let named = try await put(a, token, "/jobs/badout", """
                {"properties":{"jobType":"Command","command":"echo","environmentId":"azureml:e@latest","outputs":{"../../escape":{"jobOutputType":"uri_folder"}}}}
                """)
            #expect(named.status == .badRequest && !FileManager.default.fileExists(atPath: h.dir.file("escape")), "\(named.text)")
        }
    }

    /// `${{inputs.x}}` inside quotes the command opened: the value stays one literal piece of that word, whatever it
    /// holds (quotes, `$(...)`, backquotes). Before, the value was quoted as a word inside those quotes, which closed
    /// them and ran the rest as shell.
    @Test func inputsInsideQuotesStayLiteral() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { a in
            let token = try await a.accessToken()
            let hostile = #"a' ; touch pwned1 ; echo 'b" ; touch pwned2 ; echo "$(touch pwned3)`touch pwned4`\"#
            let command = #"python -c 'import sys, json; print(json.dumps(sys.argv[1:]))' '${{inputs.t}}' "${{inputs.t}}" x${{inputs.t}}y"#
            let body: [String: Any] = ["properties": ["jobType": "Command", "command": command, "environmentId": "azureml:e@latest",
                                                      "inputs": ["t": ["jobInputType": "literal", "value": hostile]]]]
            let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
            let job = try await put(a, token, "/jobs/quoted", json)
            #expect(job.status == .created, "\(job.text)")
            let done = try await a.waitFor(token, run: "quoted", ["Completed", "Failed"])
            #expect(done["status"]?.string == "Completed", "\(done)")
            let project = h.dir.file("runs/\(done["runUuid"]?.string ?? "")/project")
            for n in 1...4 { #expect(!FileManager.default.fileExists(atPath: project + "/pwned\(n)"), "pwned\(n): the value ran as shell") }
            let details = try await a.request(.get, "/history/v1.0/\(a.harness.ws)/runs/quoted/details", token: token)
            let logURL = try #require(details.json.value(at: "logFiles")?.object["user_logs/std_log.txt"]?.string)
            let log = try await a.request(.get, String(logURL.dropFirst(a.harness.aml.settings.baseURL.count)), token: nil).text
            let arguments = JSONValue(json: Array(log.trimmingCharacters(in: .whitespacesAndNewlines).utf8))?.array?.compactMap(\.string)
            #expect(arguments == [hostile, hostile, "x" + hostile + "y"], "\(log)")
        }
    }

    /// The substitution read back by a real `sh`: the same value three times, whatever quotes stand around it, and
    /// an escaped `\${{` left as text.
    @Test func aSubstitutedValueIsOneLiteralWhateverTheQuotes() async throws {
        let value = #"it's "$(x)" `y` \ ${{inputs.t}} end\"#
        let command = try AMLLocalServer.substitute(#"printf '%s\n' ${{inputs.t}} '${{inputs.t}}' "${{inputs.t}}" \${{inputs.t}}"#, ["inputs.t": value])
        let out = try await ChildProcess.run("/bin/sh", ["-c", command], environment: ["PATH": "/usr/bin:/bin"])
        #expect(out.output == [value, value, value, "${{inputs.t}}"].map { $0 + "\n" }.joined(), "\(command)")
        // mlhook's own quoting never hands aml-local a "${{", and sh reads the value back unchanged.
        let quoted = Template.shellQuoted("feature${{inputs.t}}")
        #expect(!quoted.contains("${{"))
        let echoed = try await ChildProcess.run("/bin/sh", ["-c", "printf '%s' " + quoted], environment: ["PATH": "/usr/bin:/bin"])
        #expect(echoed.output == "feature${{inputs.t}}")
    }
}
