import Foundation
@testable import AMLLocal
import TestSupport
import Testing

/// A project zip is held to what its entries declare and to the archive-wide limit over all entries together:
/// a deflate stream that inflates past its declared size cannot write more than the budget left.
@Suite struct SafeUnzipTests {
    /// A zip of `count` entries, each 400 kB of zeros deflated, whose headers (local and central) declare 1 byte.
    static func lyingZip(entries count: Int) async throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lying-zip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("z.zip")
        let script = """
        import struct, sys, zipfile
        with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(\(count)):
                z.writestr("f%d.bin" % i, b"\\0" * 400_000)
        data = bytearray(open(sys.argv[1], "rb").read())
        def patch(signature, offset):
            at = data.find(signature)
            while at != -1:
                struct.pack_into("<I", data, at + offset, 1)
                at = data.find(signature, at + 4)
        patch(b"PK\\x03\\x04", 22)  # local header: uncompressed size
        patch(b"PK\\x01\\x02", 24)  # central directory: uncompressed size
        open(sys.argv[1], "wb").write(data)
        """
        let made = try await runProcessAsync("/usr/bin/env", ["python3", "-c", script, out.path])
        #expect(made.status == 0, "\(made.output)")
        return Array(try Data(contentsOf: out))
    }

    @Test func anEntryThatInflatesPastWhatItDeclaresIsRefused() async throws {
        let zip = try await Self.lyingZip(entries: 3)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unzip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // 1 MB in all: each 400 kB entry fits the archive-wide limit alone, three together do not, and each lies.
        #expect(throws: AMLError.self) { try SafeUnzip.extract(zip, to: dir, maxBytes: 1_000_000) }
        let written = (FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? [])
            .compactMap { try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($0).path)[.size] as? Int }
            .reduce(0, +)
        #expect(written <= 1, "wrote \(written) bytes for entries that declare 1 byte each")
    }

    /// Found by scripts/fuzz.sh (unzip): a corrupt central directory made ZIPFoundation's in-memory archive seek
    /// past its end and trap, taking aml-local down with one upload.
    @Test func aZipThatSeeksPastItsEndIsRefusedNotACrash() throws {
        let zip = try #require(Data(base64Encoded: "UEsDBBQAAAAAAASagl1kenCvZAAAAGQAAAAFAAAAYS50eHRhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhUEsBAhQDFAAAAAAABJqCXWR6cK9kAAAAZAAAAAUAAAAAAAAAAAAAAA0AAAAPAAAudHh0UEsFBgAAAAABAAEAMwAAAIcAAAAAAA=="))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unzip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Read from a file, the short read is an answer (a 400, or what the readable entries hold), not a trap.
        _ = try? SafeUnzip.extract([UInt8](zip), to: dir, maxBytes: 1 << 20, maxEntries: 64)
        let written = (FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? [])
            .compactMap { try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($0).path)[.size] as? Int }
        #expect(written.reduce(0, +) <= 1 << 20)
    }

    /// Found by scripts/fuzz.sh (unzip, 277 bytes): an entry whose header declares about 4 GB of compressed data in a
    /// file of a few hundred bytes kept ZIPFoundation reading past the end chunk by chunk (libFuzzer's 10 s timeout).
    /// No entry can hold more compressed bytes than the whole upload: such an archive is refused at once.
    @Test func anEntryDeclaringMoreCompressedBytesThanTheUploadIsRefusedAtOnce() throws {
        let zip = try #require(Data(base64Encoded: "UEsDBBQAgAAIABgtg13YAMplEQQAAPH////3AAAAdHJhaW4ucHkrKMrMK9FQz0jNyclX1+QCAFBLAwQUAAAACAAYLYNdAAAAAAIAAAAAAAAABgAAAAgAGC2DXdgAymURAAAADwAAAAgAAAB0cmFpbi5weSsoyswr0VDPSM3JyVcAUEsDBBQAAAAIABgtg10Qod1fslIwrgUAUEsBAhQDFAAAAAgAGC2DXdgAymURAAAADwAAAAgAAAAAAAAAAAAAAIABAAAAAHRyYWluLnB5UEsBAhQDXdgAymZlQgAAAAAAAID/////////KgFdAAAAbW9kZWwvY29uZi5qc29uUEsFBgAAAAADAAMApwAAAJkAAAAAAA=="))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unzip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let started = ContinuousClock.now
        #expect(throws: AMLError.self) { try SafeUnzip.extract([UInt8](zip), to: dir, maxBytes: 1 << 20, maxEntries: 64) }
        #expect(ContinuousClock.now - started < .seconds(1), "took \(ContinuousClock.now - started)")
    }
}
