import Foundation
import Signing
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

    /// A blob upload with a valid SAS goes to disk as it arrives, and a download is sent from the file: 160 MiB up,
    /// in one PUT and as blocks, and down again, and the server's peak memory grows by well under that. Before, the
    /// PUT body was collected whole (and copied twice), and a GET read the whole blob into memory.
    @Test func blobUploadsAndDownloadsStreamThroughDisk() async throws {
        let dir = try TemporaryDirectory("aml-blob-stream")
        defer { dir.remove() }
        // An upload a crash cut short, left in the spool: removed at start.
        try FileManager.default.createDirectory(atPath: dir.file("aml/incoming"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir.file("aml/incoming/cut-short"), contents: Data(count: 1 << 20))
        let server = try await AMLLocalPathEscapeTests.Server.start(in: dir)
        #expect(!FileManager.default.fileExists(atPath: dir.file("aml/incoming/cut-short")))
        defer { server.aml.process.signal(SIGTERM) }
        let (container, sas) = try await server.upload()
        let base = "http://127.0.0.1:\(server.port)"
        let size = 160 << 20
        var bytes = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i >> 12) }
        let big = dir.file("big.bin")
        FileManager.default.createFile(atPath: big, contents: Data(bytes))
        let md5 = Data(Digest.md5(bytes)).base64EncodedString()
        func curl(_ args: [String]) async throws -> String {
            let (_, out) = try await runProcessAsync("/usr/bin/curl", ["-s", "--max-time", "120"] + args)
            return out.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let before = Self.residentMiB(server.aml.process.pid)

        // One PUT, with its Content-MD5 checked against the bytes as they were written.
        let put = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "x-ms-blob-type: BlockBlob", "-H", "Content-MD5: \(md5)",
                                  "--data-binary", "@" + big, "\(base)\(container)/model.bin?\(sas)"])
        #expect(put == "201")
        let wrong = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "x-ms-blob-type: BlockBlob",
                                    "-H", "Content-MD5: \(Data(Digest.md5([1])).base64EncodedString())", "--data-binary", "@" + big, "\(base)\(container)/bad.bin?\(sas)"])
        #expect(wrong == "400", "a body whose MD5 does not match is refused")

        // The same bytes as five blocks of 32 MiB, then the block list.
        var ids: [String] = []
        for k in 0..<5 {
            let part = dir.file("part\(k)")
            FileManager.default.createFile(atPath: part, contents: Data(bytes[(k * (32 << 20))..<((k + 1) * (32 << 20))]))
            let id = Data("block-\(k)".utf8).base64EncodedString()
            ids.append(id)
            let status = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", "@" + part,
                                         "\(base)\(container)/blocks.bin?comp=block&blockid=\(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&\(sas)"])
            #expect(status == "201")
        }
        let list = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>" + ids.map { "<Latest>\($0)</Latest>" }.joined() + "</BlockList>"
        let committed = try await curl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", list, "\(base)\(container)/blocks.bin?comp=blocklist&\(sas)"])
        #expect(committed == "201")

        // Both read back whole, byte for byte.
        for name in ["model.bin", "blocks.bin"] {
            let out = dir.file("down-\(name)")
            let status = try await curl(["-o", out, "-w", "%{http_code}", "\(base)\(container)/\(name)?\(sas)"])
            #expect(status == "200")
            let down = try Data(contentsOf: URL(fileURLWithPath: out))
            #expect(down.count == size && Data(Digest.md5([UInt8](down))).base64EncodedString() == md5, "\(name) came back as it was sent")
        }
        let grown = Self.residentMiB(server.aml.process.pid) - before
        #expect(grown < 64, "aml-local's peak memory grew \(grown) MiB while 640 MiB of blobs went up and down")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: dir.file("aml/incoming"))) ?? []
        #expect(left.isEmpty, "nothing is left in the spool: \(left)")
    }
}
