import Foundation
import TestSupport
import Testing

/// aml-local reads no large body before it knows who sends it: uploads without a valid token, SAS or scoring key
/// are refused without being buffered. Before, each was read into memory up to 256 MiB with no overall cap (16 ×
/// 250 MB took the process to 4.6 GB; embedded in `serve`, /hooks stalled beside it).
@Suite struct AMLLocalBodyBudgetTests {
    static func residentMiB(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""  // the peak resident set
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
    }

    @Test func unauthenticatedUploadsAreRefusedUnread() async throws {
        let dir = try TemporaryDirectory("aml-body-budget")
        defer { dir.remove() }
        let aml = try await AMLLocalProcess.start(in: dir)
        defer { aml.process.signal(SIGTERM) }
        let base = aml.credential("base_url")
        // 64 MiB of upload, sent 8 times at once with a wrong token, to a blob URL with a forged SAS, and to a
        // scoring URL with no key.
        let big = dir.file("big.bin")
        FileManager.default.createFile(atPath: big, contents: Data(count: 64 << 20))
        let before = Self.residentMiB(aml.process.pid)
        let targets = (0..<4).map { _ in (base + "/subscriptions/x/resourceGroups/y/providers/Microsoft.MachineLearningServices/workspaces/z/jobs/j?api-version=2024-04-01", ["-H", "Authorization: Bearer forged"]) }
            + [(base + "/blob/local/c0ffee00-0000-0000-0000-000000000000/x.bin?sig=forged&se=2099-01-01T00:00:00Z&sp=racwl", ["-H", "x-ms-blob-type: BlockBlob"]),
               (base + "/blob/local/c0ffee00-0000-0000-0000-000000000000/y.bin", ["-H", "x-ms-blob-type: BlockBlob"]),
               (base + "/score/nope", []), (base + "/\(aml.credential("tenant_id"))/oauth2/token", [])]
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for (url, headers) in targets {
                group.addTask {
                    let (_, out) = try await runProcessAsync("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "60", "-X", "PUT"]
                                                             + headers + ["--data-binary", "@" + big, url])
                    return Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.allSatisfy { [400, 401, 403, 404, 405, 413].contains($0) }, "\(statuses)")
        let grown = Self.residentMiB(aml.process.pid) - before
        #expect(grown < 64, "aml-local's peak memory grew \(grown) MiB while refusing 512 MiB of unauthenticated uploads")
        #expect(kill(aml.process.pid, 0) == 0, "aml-local is still serving")
    }
}
