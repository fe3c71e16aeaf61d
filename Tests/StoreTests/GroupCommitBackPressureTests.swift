import Foundation
import GRDB
import Logging
@testable import Store
import TestSupport
import Testing

/// The group-commit queue is bounded: while the disk is slow, writes past the bound fail at once with a retryable
/// `.busy` (ingress turns it into 503 with the sender retrying) instead of queueing, and memory, growing.
@Suite struct GroupCommitBackPressureTests {
    @Test func writesPastTheBoundAreRefusedWhileTheDiskIsSlow() async throws {
        let dir = try TemporaryDirectory("mlhook-gcw")
        defer { dir.remove() }
        let pool = try DatabasePool(path: dir.file("w.db"))
        try await pool.write { try $0.execute(sql: "CREATE TABLE t (v INTEGER)") }
        let gate = DispatchSemaphore(value: 0)
        let writer = GroupCommitWriter<Int, Int>(pool: pool, maxBatch: 1, maxQueued: 4, name: "test-writer", logger: Logger(label: "t")) { db, items in
            // The first commit stands for a disk that stalls until the test lets it go.
            if items == [0] { gate.wait() }
            for v in items { try db.execute(sql: "INSERT INTO t (v) VALUES (?)", arguments: [v]) }
            return items
        }
        defer { writer.stop() }
        let first = Task { try await writer.submit(0) }
        try await Task.sleep(for: .milliseconds(200))  // the writer thread has taken item 0 and is stalled
        let results = await withTaskGroup(of: Result<Int, any Error>.self) { group in
            for v in 1...10 {
                group.addTask {
                    do { return .success(try await writer.submit(v)) } catch { return .failure(error) }
                }
            }
            try? await Task.sleep(for: .milliseconds(300))
            gate.signal()
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(try await first.value == 0)
        let refused = results.compactMap { r -> StoreError? in if case .failure(let e) = r { return e as? StoreError } else { return nil } }
        #expect(results.filter { if case .success = $0 { true } else { false } }.count == 4, "the bound held 4 while the disk stalled")
        #expect(refused.count == 6 && refused.allSatisfy { $0.code == .busy && $0.isRetryable })
        #expect(try await pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") } == 5)
    }
}
