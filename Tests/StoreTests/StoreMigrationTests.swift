import Foundation
import GRDB
import Logging
import MLHookCore
@testable import Store
import TestSupport
import Testing

/// A store written by an earlier version opens, migrates, and keeps every event with its body.
@Suite struct StoreMigrationTests {
    @Test func bodiesMoveToTheirOwnTableAndNothingIsLost() async throws {
        let dir = try TemporaryDirectory("mlhook-migrate")
        defer { dir.remove() }
        let path = dir.file("old.db")
        // The schema as version 8 left it, with two events (one planned, with its plan).
        let old = try DatabaseQueue(path: path)
        try SQLiteStore.migrator.migrate(old, upTo: "v8 job delivery id")
        let body = try Fixtures.webhook("github", "push.new-branch-1-commit.octokit.json")
        try await old.write { db in
            for (i, state) in ["received", "planned"].enumerated() {
                try db.execute(sql: """
                    INSERT INTO events (id, source, kind, delivery_id, headers, content_type, body, received_at, state, plan)
                    VALUES (?, 'github', 'push', ?, '{}', 'application/json', ?, ?, ?, ?)
                    """, arguments: ["evt_old\(i)", "d\(i)", Data(body), 1_800_000_000 + Double(i), state, state == "planned" ? "[]" : nil])
            }
        }
        try old.close()

        let store = try SQLiteStore(path: path, logger: Logger(label: "test"))
        let events = try await store.list(limit: nil, source: nil)
        #expect(events.map(\.id) == ["evt_old1", "evt_old0"] && events.allSatisfy { $0.bodyBytes == body.count })
        #expect(try await store.event(id: "evt_old0")?.body == body)
        #expect(try await store.event(id: "evt_old1")?.plan == "[]")
        #expect(try await store.unplanned(limit: 10).map(\.body) == [body])
        // New events go to the new layout; duplicates are still found; pruning removes bodies too.
        var e = InboundEvent(id: EventID.make(), source: "github", kind: "push", deliveryID: "d-new", headers: [:], body: body,
                             contentType: "application/json", receivedAt: Date(timeIntervalSince1970: 1_850_000_000))
        #expect(try await store.append(e) == .stored(id: e.id))
        e.id = EventID.make()
        #expect(try await store.append(e) != .stored(id: e.id))
        #expect(try await store.event(id: try #require(try await store.list(limit: 1, source: nil).first?.id))?.body == body)
        #expect(try await store.prune(receivedBefore: Date(timeIntervalSince1970: 1_800_000_010)) == 2, "the two old events")
        let orphans = try await store.orphanedLegacyBodies()
        #expect(orphans == 0, "pruning takes the bodies with the events")
    }
}
