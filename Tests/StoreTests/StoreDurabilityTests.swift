import Foundation
import Logging
import MLHookCore
@testable import Store
import TestSupport
import Testing

/// `store.synchronous` is what the connection that commits really uses: with `full`, SQLite fsyncs the
/// write-ahead log at every commit, so an acknowledged event survives power loss.
@Suite struct StoreDurabilityTests {
    @Test(arguments: [(SynchronousMode.full, 2), (SynchronousMode.normal, 1)])
    func theWriterCommitsWithTheConfiguredSynchronousLevel(mode: SynchronousMode, level: Int) async throws {
        let dir = try TemporaryDirectory("mlhook-sync")
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.file("mlhook.db"), synchronous: mode, logger: Logger(label: "test"))
        // GRDB's DatabasePool used to leave its writer at NORMAL whatever was configured.
        let writer = try await store.writerSynchronousLevel()
        #expect(writer == level)
        // And the group commit runs on that connection: an append lands, and the level is unchanged after it.
        let e = InboundEvent(id: EventID.make(), source: "github", kind: "push", deliveryID: "d1", headers: [:], body: Array("{}".utf8),
                             contentType: "application/json", receivedAt: Date())
        #expect(try await store.append(e) == .stored(id: e.id))
        #expect(try await store.writerSynchronousLevel() == level)
    }
}
