import Foundation
import Logging
import MLHookCore
@testable import Store
import TestSupport
import Testing

/// Event bodies are written once, to segment files beside the database, and read back exactly or not at all.
@Suite struct BodyLogTests {
    func event(_ delivery: String, body: [UInt8]) -> InboundEvent {
        InboundEvent(id: EventID.make(), source: "github", kind: "push", deliveryID: delivery, headers: [:], body: body,
                     contentType: "application/json", receivedAt: Date())
    }

    @Test func crc32IsZlibs() {
        #expect(CRC32.checksum(Data("123456789".utf8)) == 0xCBF4_3926)  // the standard check value
        #expect(CRC32.checksum(Data()) == 0)
        // Eight bytes at a time agrees with a byte at a time, for every length and alignment of the tail.
        func reference(_ d: Data) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for b in d {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            }
            return crc ^ 0xFFFF_FFFF
        }
        let bytes = Data((0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        for n in 0...40 { #expect(CRC32.checksum(bytes.prefix(n)) == reference(bytes.prefix(n))) }
        #expect(CRC32.checksum(bytes) == reference(bytes))
    }

    @Test func bodiesGoToTheLogNotIntoSQLite() async throws {
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.file("mlhook.db"), logger: Logger(label: "test"))
        // Opened and read, nothing is created yet (a CLI run as another user leaves no files the server cannot write).
        #expect(try await store.list(limit: nil, source: nil).isEmpty)
        #expect(try await store.prune(receivedBefore: Date()) == 0)
        #expect(!FileManager.default.fileExists(atPath: dir.file("mlhook.db.bodies")))
        let marker = "body-marker-\(UUID().uuidString)"
        let body = Array(#"{"ref":"refs/heads/main","note":"\#(marker)"}"#.utf8) + (try Fixtures.webhook("github", "push.tag-deleted.octokit.json"))
        let e = event("d1", body: body)
        #expect(try await store.append(e) == .stored(id: e.id))
        #expect(try await store.append(event("d1", body: body)) == .duplicate(id: e.id))
        #expect(try await store.event(id: e.id)?.body == body)

        // Written once: in the segment, and nowhere in the database or its write-ahead log.
        let segment = try Data(contentsOf: URL(fileURLWithPath: dir.file("mlhook.db.bodies/00000001.body")))
        #expect(segment.count == body.count + BodyLog.headerBytes, "the duplicate's body was not written")
        for file in ["mlhook.db", "mlhook.db-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: dir.file(file)))) ?? Data()
            #expect(bytes.range(of: Data(marker.utf8)) == nil, "\(file) holds the body")
        }
        let mode = try FileManager.default.attributesOfItem(atPath: dir.file("mlhook.db.bodies/00000001.body"))[.posixPermissions] as? Int
        #expect(mode == 0o600, "payloads can be private")
    }

    @Test func concurrentRedeliveriesStoreOneEventAndOneBody() async throws {
        // The same delivery 20 times at once: group commit puts several in one batch, and each batch must see
        // the earlier ones, in the store and in the batch itself.
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.file("mlhook.db"), logger: Logger(label: "test"))
        let body = Array(#"{"same":"delivery"}"#.utf8)
        let outcomes = try await withThrowingTaskGroup(of: AppendOutcome.self) { group in
            for _ in 0..<20 { group.addTask { try await store.append(event("same", body: body)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let stored = outcomes.compactMap { if case .stored(let id) = $0 { id } else { nil } }
        #expect(stored.count == 1)
        #expect(outcomes.allSatisfy { $0 == .stored(id: stored[0]) || $0 == .duplicate(id: stored[0]) })
        #expect(try await store.list(limit: nil, source: nil).map(\.id) == stored)
        let segment = try Data(contentsOf: URL(fileURLWithPath: dir.file("mlhook.db.bodies/00000001.body")))
        #expect(segment.count == body.count + BodyLog.headerBytes, "one body written")
    }

    @Test func aDamagedBodyIsAnErrorNeverOtherBytes() async throws {
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.file("mlhook.db"), logger: Logger(label: "test"))
        let e = event("d1", body: Array(#"{"a":"bcdefgh"}"#.utf8))
        _ = try await store.append(e)
        let path = dir.file("mlhook.db.bodies/00000001.body")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[BodyLog.headerBytes + 6] ^= 0x01  // one bit of the body
        try bytes.write(to: URL(fileURLWithPath: path))
        await #expect { _ = try await store.event(id: e.id) } throws: { error in
            "\(error)".contains("read the body of event \(e.id)") && "\(error)".contains("checksum")
        }
        try Data().write(to: URL(fileURLWithPath: path))  // truncated away
        await #expect { _ = try await store.event(id: e.id) } throws: { "\($0)".contains("cut short") }
    }

    @Test func segmentsRollOverAndPruningRemovesOnlyUnreferencedOnes() async throws {
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let log = try BodyLog(directory: dir.file("b"), fsync: true, segmentBytes: 100)
        let refs = try (0..<5).map { i in try log.append([Data(repeating: UInt8(i), count: 60)]) }.flatMap { $0 }
        // 72 bytes per record: every second append fills a 100-byte segment.
        #expect(refs.map(\.segment) == [1, 1, 2, 2, 3] && log.currentSegment == 3)
        for (i, ref) in refs.enumerated() { #expect(try log.read(ref, length: 60) == Data(repeating: UInt8(i), count: 60)) }
        #expect(try log.prune(before: 2) == 1)
        #expect(throws: BodyLog.Failure.self) { try log.read(refs[0], length: 60) }
        #expect(try log.read(refs[2], length: 60) == Data(repeating: 2, count: 60))
        #expect(try log.prune(before: Int.max) == 1, "the segment being appended to stays")
        #expect(try log.read(refs[4], length: 60) == Data(repeating: 4, count: 60))
        // Reopened, it appends after what is there.
        let reopened = try BodyLog(directory: dir.file("b"), fsync: true, segmentBytes: 100)
        let next = try reopened.append([Data("x".utf8)])
        #expect(next == [BodyLog.Ref(segment: 3, offset: 72)])
        #expect(try reopened.read(next[0], length: 1) == Data("x".utf8))
    }

    @Test func largeAndSmallBodiesInOneBatchReadBackExactly() throws {
        // Small records are gathered into one write; large ones are written from where they are.
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let log = try BodyLog(directory: dir.file("b"), fsync: false)
        let bodies = [Data("small".utf8), Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }), Data("after".utf8),
                      Data(repeating: 0x61, count: 600 << 10), Data(repeating: 0x62, count: 600 << 10), Data()]
        let refs = try log.append(bodies)
        for (ref, body) in zip(refs, bodies) { #expect(try log.read(ref, length: body.count) == body) }
        let size = try FileManager.default.attributesOfItem(atPath: BodyLog.path(dir.file("b"), 1))[.size] as? Int
        #expect(size == bodies.reduce(0) { $0 + $1.count + BodyLog.headerBytes }, "records are back to back")
    }

    @Test func twoStoresOnOneFileInterleaveBodiesInsteadOfOverwritingThem() async throws {
        // A second `mlhook serve` on the same store by mistake: SQLite serializes the two, and so must the body log.
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let a = try SQLiteStore(path: dir.file("mlhook.db"), bodySegmentBytes: 4096, logger: Logger(label: "a"))
        let b = try SQLiteStore(path: dir.file("mlhook.db"), bodySegmentBytes: 4096, logger: Logger(label: "b"))
        var sent: [(String, [UInt8])] = []
        try await withThrowingTaskGroup(of: (String, [UInt8]).self) { group in
            for i in 0..<60 {
                group.addTask {
                    let e = event("d\(i)", body: Array("{\"n\":\(i),\"pad\":\"\(String(repeating: "x", count: 100 + i * 7))\"}".utf8))
                    let outcome = try await (i % 2 == 0 ? a : b).append(e)
                    #expect(outcome == .stored(id: e.id))
                    return (e.id, e.body)
                }
            }
            for try await r in group { sent.append(r) }
        }
        for (id, body) in sent {
            #expect(try await a.event(id: id)?.body == body)
            #expect(try await b.event(id: id)?.body == body)
        }
        // One store prunes a segment the other is still appending to (it had no stored events): the other
        // moves on to a new segment instead of writing into a deleted file.
        for i in 0..<3 { _ = try await b.append(event("b\(i)", body: Array(repeating: UInt8(ascii: "b"), count: 5000))) }
        #expect(b.bodies.currentSegment > a.bodies.currentSegment)
        #expect(try b.bodies.prune(before: Int.max) > 0)
        #expect(!FileManager.default.fileExists(atPath: BodyLog.path(dir.file("mlhook.db.bodies"), a.bodies.currentSegment)))
        let late = event("late", body: Array(#"{"late":true}"#.utf8))
        _ = try await a.append(late)
        #expect(try await b.event(id: late.id)?.body == late.body)
    }

    @Test func aBodyThatCannotBeWrittenStoresNothingAndSaysWhy() async throws {
        // The bodies directory cannot be made (a file is in its place): the append fails, naming the path, and
        // the event is not half-stored (no row pointing at a body that is not there); ingress answers 503.
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.file("mlhook.db"), logger: Logger(label: "test"))
        try Data("not a directory".utf8).write(to: URL(fileURLWithPath: dir.file("mlhook.db.bodies")))
        // Opening a store in that state is refused with the reason.
        #expect { _ = try SQLiteStore(path: dir.file("mlhook.db"), logger: Logger(label: "test")) } throws: {
            "\($0)".contains("mlhook.db.bodies is not a directory")
        }
        await #expect { _ = try await store.append(event("d1", body: Array("{}".utf8))) } throws: { "\($0)".contains("mlhook.db.bodies") }
        #expect(try await store.list(limit: nil, source: nil).isEmpty)
        // Once the directory can be made, the same delivery is stored (it was not recorded as seen).
        try FileManager.default.removeItem(atPath: dir.file("mlhook.db.bodies"))
        let e = event("d1", body: Array("{}".utf8))
        #expect(try await store.append(e) == .stored(id: e.id))
        #expect(try await store.event(id: e.id)?.body == Array("{}".utf8))
    }

    @Test func pruningEventsDeletesTheirSegments() async throws {
        let dir = try TemporaryDirectory("mlhook-bodies")
        defer { dir.remove() }
        let store = try SQLiteStore(path: dir.file("mlhook.db"), bodySegmentBytes: 100, logger: Logger(label: "test"))
        var old = event("old", body: Array(repeating: UInt8(ascii: "a"), count: 90))
        old.receivedAt = Date(timeIntervalSinceNow: -30 * 86_400)
        _ = try await store.append(old)  // fills segment 1
        let new = event("new", body: Array(repeating: UInt8(ascii: "b"), count: 90))
        _ = try await store.append(new)  // segment 2
        #expect(try await store.prune(receivedBefore: Date(timeIntervalSinceNow: -7 * 86_400)) == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.file("mlhook.db.bodies/00000001.body")))
        #expect(try await store.event(id: new.id)?.body == new.body)
    }
}
