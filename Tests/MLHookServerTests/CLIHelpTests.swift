import Foundation
import TestSupport
import Testing

/// Every command and every option, argument and flag of the CLI says what it is (`--help`), read from the
/// binary's own description of its command tree.
@Suite struct CLIHelpTests {
    @Test func everyCommandAndOptionHasHelpText() async throws {
        let dumped = try await runMLHook(["--experimental-dump-help"], directory: FileManager.default.temporaryDirectory.path)
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dumped.output.utf8)) as? [String: Any])
        var missing: [String] = []
        var commands = 0
        func walk(_ command: [String: Any], _ path: [String]) {
            let path = path + [command["commandName"] as? String ?? "?"]
            commands += 1
            if path.count > 1, (command["abstract"] as? String ?? "").isEmpty { missing.append("command `\(path.dropFirst().joined(separator: " "))`") }
            for argument in command["arguments"] as? [[String: Any]] ?? [] where path.last != "help" {
                let names = (argument["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                if names.contains(where: { ["help", "version", "experimental-dump-help"].contains($0) }) { continue }
                if (argument["abstract"] as? String ?? "").isEmpty {
                    missing.append("`\(path.dropFirst().joined(separator: " "))` \(names.first.map { "--" + $0 } ?? argument["valueName"] as? String ?? "?")")
                }
            }
            for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, path) }
        }
        walk(try #require(root["command"] as? [String: Any]), [])
        #expect(commands > 30, "the whole tree was read")
        #expect(missing.isEmpty, "without help: \(missing.joined(separator: ", "))")
    }

    /// One error style: `mlhook: …` on stderr and exit 2 for a usage error, whatever command it is; help and the
    /// version exit 0.
    @Test func usageErrorsAreMlhookPrefixedAndExitTwo() async throws {
        let tmp = FileManager.default.temporaryDirectory.path
        for arguments in [["jobs", "ls", "--bogus"], ["nosuch"], ["jobs", "show"], ["aml", "computes", "scale", "x"], ["send"]] {
            let run = try await runMLHook(arguments, directory: tmp)
            #expect(run.status == 2 && run.output.hasPrefix("mlhook: ") && !run.output.contains("Error: "), "\(arguments): \(run.status) \(run.output)")
        }
        #expect(try await runMLHook(["--version"], directory: tmp).status == 0)
        #expect(try await runMLHook(["jobs", "--help"], directory: tmp).status == 0)
    }
}
