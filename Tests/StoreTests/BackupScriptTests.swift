import Foundation
import Logging
import MLHookCore
import Store
import TestSupport
import Testing

/// deploy/README.md's backup script, as printed (with its two paths pointed at a temp dir), on a real store that
/// mlhook keeps writing: the copy opens with every event and body, and only its owner can read it (before, sqlite3
/// made it 0644 beside a 0600 store).
@Suite struct BackupScriptTests {
    @Test func theRunBooksBackupIsCompleteAndPrivate() async throws {
        let dir = try TemporaryDirectory("mlhook-backup")
        defer { dir.remove() }
        let db = dir.file("mlhook.db")
        let store = try SQLiteStore(path: db, logger: Logger(label: "test"))
        let now = Date()
        for i in 0..<20 { _ = try await store.append(StoreContractTests.event("d-\(i)", body: #"{"n":\#(i)}"#, at: now)) }

        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
        let book = try String(contentsOfFile: root + "/deploy/README.md", encoding: .utf8)
        let section = try #require(book.components(separatedBy: "## Backups").dropFirst().first)
        let script = try #require(section.components(separatedBy: "```sh\n").dropFirst().first?.components(separatedBy: "```").first)
        let out = dir.file("backup/mlhook-copy")
        try FileManager.default.createDirectory(atPath: dir.file("backup"), withIntermediateDirectories: true)
        let local = script.split(separator: "\n").map { line -> String in
            if line.hasPrefix("DB=") { return "DB=\(db)" }
            if line.hasPrefix("OUT=") { return "OUT=\(out)" }
            return String(line)
        }.joined(separator: "\n")
        #expect(local.contains("DB=\(db)") && local.contains("OUT=\(out)"), "the script sets DB and OUT: \(script)")
        // Under a permissive umask, as a cron job's shell may have.
        let run = try await runProcessAsync("/bin/sh", ["-c", "umask 022; " + local], directory: dir.path)
        #expect(run.status == 0, "\(run.output)")

        var st = stat()
        #expect(stat(out + ".db", &st) == 0 && st.st_mode & 0o777 == 0o600, "the copy is 0600, not \(String(st.st_mode & 0o777, radix: 8))")
        let copy = try SQLiteStore(path: out + ".db", logger: Logger(label: "test"))
        let events = try await copy.list(limit: nil, source: nil)
        #expect(events.count == 20)
        let first = try #require(events.first)
        #expect(try await copy.event(id: first.id)?.body.isEmpty == false, "the bodies came with it")
    }
}

/// `store migrate` prints each table's digest: always 32 hex digits (a half with a leading zero printed 15).
@Suite struct TransferChecksumTests {
    @Test func digestsAlwaysHave32HexDigits() {
        for i in 0..<300 {
            var sum = TransferChecksum()
            sum.add(["job_id": .text("job_\(i)"), "number": .int(i)], .jobAttempts)
            let digest = String(sum.description.split(separator: " ").last ?? "")
            #expect(digest.count == 32 && digest.allSatisfy(\.isHexDigit), "row \(i): \(digest)")
        }
    }
}
