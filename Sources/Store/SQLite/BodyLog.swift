import CZlibCRC
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Event bodies in append-only segment files beside the database, written once.
///
/// Stored in SQLite, a body went to the write-ahead log and was then copied into the database file by the
/// checkpointer: about 16.5 KB written per 7.3 KB body, and the checkpoints copying them held ingest's p99
/// above 20 ms (bench/breakdown.sh: with bodies stored empty the p99 went from 25-27 ms to 14-15 ms). Here a
/// body is written once, and SQLite keeps where it is.
///
/// A record is `MLB1`, the body's length and its CRC-32 (both UInt32, little-endian), then the body. The
/// store appends a batch's bodies with one write and, with `synchronous: full`, fsyncs the segment before
/// the transaction that references them commits, so a committed event always points at durable bytes. A
/// crash between the two leaves bytes at the end of a segment that no event references and nothing reads.
/// Appends go to the file's current end under SQLite's write lock, so two processes on one store (a second
/// `mlhook serve` by mistake) interleave records instead of overwriting each other's. Segments are
/// `00000001.body`, `00000002.body`, … of about `segmentBytes` each; pruning deletes those older than the
/// oldest event still stored.
final class BodyLog: Sendable {
    /// Where one body is.
    struct Ref: Sendable, Equatable {
        var segment: Int
        var offset: Int
    }

    /// A body-log failure with the store error code it maps to (`io`, `corrupt`, `badRecord`, `unavailable`).
    struct Failure: Error, CustomStringConvertible {
        let code: StoreError.Code
        let description: String
        init(_ code: StoreError.Code, _ description: String) {
            self.code = code
            self.description = description
        }
    }

    let directory: String
    private let fsync: Bool
    private let segmentBytes: Int
    private let state: Mutex<Appender>

    /// The segment being appended to (`fd` is -1 until the first append opens it). Only touched with `state`
    /// locked. Its size is not kept: each append asks the file, which another process may have appended to.
    private struct Appender {
        var segment: Int
        var fd: Int32
    }

    private static let magic: [UInt8] = Array("MLB1".utf8)
    static let headerBytes = 12

    /// Finds the newest segment. Nothing is created until the first append, so opening a store only to read
    /// it (`mlhook events ls`, perhaps as another user) leaves no files behind that the server cannot write.
    init(directory: String, fsync: Bool, segmentBytes: Int = 64 << 20) throws {
        self.directory = directory
        self.fsync = fsync
        self.segmentBytes = segmentBytes
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw Failure(.unavailable, "\(directory) is not a directory")
        }
        let newest = try Self.segments(in: directory).last ?? 1
        state = Mutex(Appender(segment: newest, fd: -1))
    }

    deinit {
        state.withLock { if $0.fd >= 0 { close($0.fd) } }
    }

    /// Appends bodies (one write for the small ones together, one fsync with `synchronous: full`).
    /// - Parameter checksums: The bodies' CRC-32s when the caller computed them already (off the writer thread).
    /// - Returns: where each one is.
    func append(_ bodies: [Data], checksums: [UInt32]? = nil) throws -> [Ref] {
        guard !bodies.isEmpty else { return [] }
        precondition(checksums == nil || checksums?.count == bodies.count, "one checksum per body")
        var headers: [[UInt8]] = []
        headers.reserveCapacity(bodies.count)
        for (i, body) in bodies.enumerated() {
            guard body.count <= Int(UInt32.max) else { throw Failure(.badRecord, "a body of \(body.count) bytes is too large") }
            var header = Self.magic
            Self.appendUInt32(UInt32(body.count), to: &header)
            Self.appendUInt32(checksums?[i] ?? CRC32.checksum(body), to: &header)
            headers.append(header)
        }
        return try state.withLock { a in
            // The file's end as it is now: another process on the same store (its appends are serialized with
            // these by SQLite's write lock, which the caller holds) may have written since, or may have pruned
            // this segment while it had no stored events; then a new one is started.
            if a.fd < 0 {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
                try moveOn(&a, after: a.segment - 1)
            }
            var st = stat()
            guard fstat(a.fd, &st) == 0 else { throw Failure(.io, "stat \(Self.path(directory, a.segment)): \(Self.errno())") }
            if st.st_nlink == 0 {
                try moveOn(&a, after: a.segment)
                guard fstat(a.fd, &st) == 0 else { throw Failure(.io, "stat \(Self.path(directory, a.segment)): \(Self.errno())") }
            }
            // Small records are gathered into one buffer (one write for a whole batch of webhooks); a large
            // body is written from where it is, so a batch of 25 MiB bodies is never copied into one block.
            var refs: [Ref] = []
            var end = Int(st.st_size)  // where the next byte goes
            var pending: [UInt8] = []  // bytes not yet written, which end at `end`
            func flush() throws {
                try write(pending, at: end - pending.count, fd: a.fd, segment: a.segment)
                pending.removeAll(keepingCapacity: true)
            }
            for (header, body) in zip(headers, bodies) {
                refs.append(Ref(segment: a.segment, offset: end))
                pending += header
                end += header.count
                if body.count > 256 << 10 {
                    try flush()
                    try body.withUnsafeBytes { try write($0, at: end, fd: a.fd, segment: a.segment) }
                } else {
                    pending += body
                }
                end += body.count
                if pending.count >= 1 << 20 { try flush() }
            }
            try flush()
            if fsync && fdatasync(a.fd) != 0 {
                throw Failure(.io, "fsync \(Self.path(directory, a.segment)): \(Self.errno())")
            }
            if end >= segmentBytes { try moveOn(&a, after: a.segment) }
            return refs
        }
    }

    /// Opens the segment after `segment` for appending (the newest there is, if another process started one
    /// already) and closes the one `a` had open.
    private func moveOn(_ a: inout Appender, after segment: Int) throws {
        let next = max(segment + 1, try Self.segments(in: directory).last ?? 0)
        let fd = try Self.open(Self.path(directory, next), syncDirectory: fsync ? directory : nil)
        if a.fd >= 0 { close(a.fd) }
        a = Appender(segment: next, fd: fd)
    }

    private func write(_ bytes: some ContiguousBytes, at offset: Int, fd: Int32, segment: Int) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if n > 0 { done += n } else if n < 0 && Glibc.errno == EINTR { continue } else {
                    throw Failure(Glibc.errno == ENOSPC ? .storageFull : .io, "write \(Self.path(directory, segment)): \(Self.errno())")
                }
            }
        }
    }

    /// One body, checked against its length and CRC-32.
    func read(_ ref: Ref, length: Int) throws -> Data {
        let path = Self.path(directory, ref.segment)
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(.io, "open \(path): \(Self.errno())") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: Self.headerBytes + length)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(ref.offset)) }
        guard n == bytes.count else { throw Failure(.corrupt, "\(path) at \(ref.offset): \(n < 0 ? Self.errno() : "the record is cut short")") }
        guard Array(bytes[0..<4]) == Self.magic, Self.uint32(bytes, at: 4) == UInt32(length) else {
            throw Failure(.corrupt, "\(path) at \(ref.offset): no body record of \(length) bytes there")
        }
        let body = Data(bytes[Self.headerBytes...])
        guard CRC32.checksum(body) == Self.uint32(bytes, at: 8) else {
            throw Failure(.corrupt, "\(path) at \(ref.offset): the body does not match its checksum (the file is damaged)")
        }
        return body
    }

    /// Deletes the segments before `segment` (none is the one being appended to). - Returns: how many.
    @discardableResult
    func prune(before segment: Int) throws -> Int {
        let current = state.withLock { $0.segment }
        var removed = 0
        for s in try Self.segments(in: directory) where s < min(segment, current) {
            try FileManager.default.removeItem(atPath: Self.path(directory, s))
            removed += 1
        }
        return removed
    }

    /// The segment being appended to.
    var currentSegment: Int { state.withLock { $0.segment } }

    static func path(_ directory: String, _ segment: Int) -> String {
        let digits = String(segment)
        return directory + "/" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".body"
    }

    private static func segments(in directory: String) throws -> [Int] {
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory)
            .compactMap { $0.hasSuffix(".body") ? Int($0.dropLast(5)) : nil }.sorted()
    }

    /// Opens a segment for writing (owner-only); a new one's directory entry is fsynced when `syncDirectory` is set.
    private static func open(_ path: String, syncDirectory: String?) throws -> Int32 {
        let existed = FileManager.default.fileExists(atPath: path)
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(.io, "open \(path): \(errno())") }
        if !existed, let directory = syncDirectory {
            let dir = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 { _ = Glibc.fsync(dir); close(dir) }
        }
        return fd
    }

    private static func appendUInt32(_ v: UInt32, to buffer: inout [UInt8]) {
        buffer += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)]
    }

    private static func uint32(_ b: [UInt8], at i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    private static func errno() -> String { String(cString: strerror(Glibc.errno)) }
}

/// CRC-32 (IEEE 802.3), computed by zlib: bench/crc32.sh measured 3.3 µs per 7 KB body against 5.1 µs for the
/// slicing-by-8 table code this replaced (1.5x at 64 KiB and 1 MiB too).
enum CRC32 {
    static func checksum(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { raw in
            // zlib takes a uInt length: feed larger buffers in pieces.
            var crc: uLong = 0
            var offset = 0
            repeat {
                let n = min(raw.count - offset, Int(UInt32.max))
                crc = crc32(crc, raw.baseAddress.map { $0.advanced(by: offset).assumingMemoryBound(to: Bytef.self) }, uInt(n))
                offset += n
            } while offset < raw.count
            return UInt32(truncatingIfNeeded: crc)
        }
    }
}
