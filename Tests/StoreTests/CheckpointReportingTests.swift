import Foundation
import GRDB
import Logging
@testable import Store
import TestSupport
import Testing

/// A reader in another process (the CLI reading a running server's store) can keep a checkpoint from finishing.
/// That is expected and retried quietly; it is reported only once it has lasted a minute, and the CLI's own store
/// does not checkpoint at all.
@Suite struct CheckpointReportingTests {
    @Test func aCheckpointHeldUpByAReaderIsNotAWarningLoop() async throws {
        let dir = try TemporaryDirectory("mlhook-ckpt")
        defer { dir.remove() }
        let path = dir.file("c.db")
        var config = Configuration()
        config.busyMode = .timeout(5)
        let pool = try DatabasePool(path: path, configuration: config)
        try await pool.write { try $0.execute(sql: "CREATE TABLE t (v BLOB)") }
        // A reader that holds its snapshot: RESTART checkpoints cannot complete while it does.
        let reader = try DatabaseQueue(path: path)
        let held = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread {
            try? reader.read { db in
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM t")
                held.signal()
                release.wait()
            }
        }.start()
        held.wait()
        let logs = CapturedLogs()
        let checkpointer = try WALCheckpointer(path: path, pageSize: 4096, interval: 0.01, restartWALBytes: 4096, maxWALBytes: 1 << 30,
                                               busyTimeout: 0.05, logger: logs.logger(level: .info))
        defer { checkpointer.stop() }
        // Commits keep the log growing past the RESTART threshold for two seconds: dozens of failed RESTARTs.
        let until = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < until {
            try await pool.write { try $0.execute(sql: "INSERT INTO t (v) VALUES (zeroblob(4096))") }
            try await Task.sleep(for: .milliseconds(5))
        }
        release.signal()
        #expect(checkpointer.failures > 5, "the reader did hold checkpoints up")
        #expect(logs.lines.filter { $0.level >= .notice }.isEmpty, "\(logs.lines.map(\.message).prefix(3))")
    }

    @Test func theCLIsStoreDoesNotCheckpoint() throws {
        let dir = try TemporaryDirectory("mlhook-ckpt-cli")
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.file("m.db"), checkpoints: false, logger: Logger(label: "cli"))
        #expect(!store.checkpoints)
        #expect(try SQLiteStore(path: dir.file("n.db"), logger: Logger(label: "serve")).checkpoints)
    }
}
