import CZlibCRC
import Foundation
import ZIPFoundation

/// Unpacks an uploaded project zip into a directory, refusing anything that could escape it.
enum SafeUnzip {
    /// Extracts every entry of `zip` under `directory`.
    /// - Parameters:
    ///   - maxBytes: The most uncompressed bytes in total (a zip bomb is refused, not extracted).
    /// - Throws: `AMLError` (400) for `..` entries, absolute paths, links, oversize archives or a corrupt zip.
    static func extract(_ zip: [UInt8], to directory: URL, maxBytes: Int, maxEntries: Int = 10_000) throws(AMLError) {
        // Read from an owner-only temporary file, not from memory: ZIPFoundation's in-memory archive traps when a
        // corrupt directory makes it seek past the end (Range requires lowerBound <= upperBound; one upload took
        // aml-local down; scripts/fuzz.sh unzip), where a file read just comes back short.
        let file = try spool(zip)
        defer { unlink(file.path) }
        let archive: Archive
        do { archive = try Archive(url: file, accessMode: .read) } catch {
            throw AMLError.validation("projectZipFile is not a valid zip archive")
        }
        var entries: [Entry] = []
        var total: UInt64 = 0
        for entry in archive {
            let path = entry.path
            if path.hasPrefix("/") || path.hasPrefix("\\") || path.contains("\\") || path.split(separator: "/").contains("..")
                || path.contains("\0") || (path.count > 1 && path.dropFirst().hasPrefix(":")) {
                throw AMLError.validation("projectZipFile entry \"\(path)\" would be written outside the project directory")
            }
            if entry.type == .symlink {
                throw AMLError.validation("projectZipFile entry \"\(path)\" is a link; links are not accepted")
            }
            total += entry.uncompressedSize
            guard total <= UInt64(maxBytes) else {
                throw AMLError.validation("projectZipFile unpacks to more than \(maxBytes) bytes")
            }
            entries.append(entry)
            guard entries.count <= maxEntries else { throw AMLError.validation("projectZipFile has more than \(maxEntries) entries") }
        }
        // The bytes are read by our own bounded reader, not by ZIPFoundation's extract: its inflate loop asks for
        // the next chunk until the deflate stream ends, and past the end of the file the chunk is empty for ever (a
        // 277-byte upload spun aml-local at 100% CPU; scripts/fuzz.sh unzip). Each entry's compressed bytes must lie
        // inside the upload, and inflating them either ends the stream, fails, or fails for want of input.
        let raw = try centralDirectory(zip)
        let fm = FileManager.default
        // What was really written so far: a deflate stream can inflate past the size its entry declares,
        // so each entry is held to what it declares and all of them together to maxBytes.
        var writtenInAll = 0
        for entry in entries {
            let target = directory.appendingPathComponent(entry.path)
            if entry.type == .directory {
                do { try fm.createDirectory(at: target, withIntermediateDirectories: true) } catch {
                    throw AMLError.validation("projectZipFile entry \"\(entry.path)\" could not be extracted: \(error)")
                }
                continue
            }
            guard let record = raw[entry.path] else {
                throw AMLError.validation("projectZipFile entry \"\(entry.path)\" is not in the archive's directory as read")
            }
            let data = try record.data(in: zip, path: entry.path)
            do {
                try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            } catch {
                throw AMLError.validation("projectZipFile entry \"\(entry.path)\" could not be extracted: \(error)")
            }
            let fd = open(target.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw AMLError.validation("projectZipFile entry \"\(entry.path)\" could not be written") }
            defer { close(fd) }
            var written = 0
            var crc: UInt = 0
            try record.contents(data, path: entry.path) { chunk throws(AMLError) in
                written += chunk.count
                writtenInAll += chunk.count
                guard written <= record.uncompressed, writtenInAll <= maxBytes else {
                    throw AMLError.validation("projectZipFile entry \"\(entry.path)\" is larger than it declares")
                }
                crc = chunk.withUnsafeBufferPointer { CZlibCRC.crc32(crc, $0.baseAddress, uInt($0.count)) }
                var offset = 0
                while offset < chunk.count {
                    let n = chunk[offset...].withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count) }
                    guard n > 0 else { throw AMLError.validation("projectZipFile entry \"\(entry.path)\" could not be written") }
                    offset += n
                }
            }
            guard written == record.uncompressed, UInt32(truncatingIfNeeded: crc) == record.crc else {
                throw AMLError.validation("projectZipFile entry \"\(entry.path)\" is corrupt (its size or CRC-32 does not match)")
            }
        }
    }

    /// One central directory record: where an entry's bytes are and what they should become.
    struct RawEntry {
        let method: UInt16
        let crc: UInt32
        let compressed: Int
        let uncompressed: Int
        let localHeader: Int

        /// The entry's compressed bytes, which must lie inside the upload.
        func data(in zip: [UInt8], path: String) throws(AMLError) -> ArraySlice<UInt8> {
            guard localHeader <= zip.count - 30, SafeUnzip.u32(zip, localHeader) == 0x0403_4b50 else {
                throw AMLError.validation("projectZipFile entry \"\(path)\" has no local header where the directory says")
            }
            let start = localHeader + 30 + Int(SafeUnzip.u16(zip, localHeader + 26)) + Int(SafeUnzip.u16(zip, localHeader + 28))
            guard start <= zip.count, compressed <= zip.count - start else {
                throw AMLError.validation("projectZipFile entry \"\(path)\" declares more bytes than the upload holds")
            }
            return zip[start..<(start + compressed)]
        }

        /// Hands the entry's uncompressed bytes to `sink` in chunks (stored or deflated entries only).
        func contents(_ data: ArraySlice<UInt8>, path: String, _ sink: ([UInt8]) throws(AMLError) -> Void) throws(AMLError) {
            switch method {
            case 0:
                guard compressed == uncompressed else { throw AMLError.validation("projectZipFile entry \"\(path)\" is stored with two sizes") }
                var at = data.startIndex
                while at < data.endIndex {
                    let end = min(at + (1 << 16), data.endIndex)
                    try sink(Array(data[at..<end]))
                    at = end
                }
            case 8:
                try SafeUnzip.inflate(data, path: path, sink)
            default:
                throw AMLError.validation("projectZipFile entry \"\(path)\" uses compression method \(method); only stored and deflated entries are accepted")
            }
        }
    }

    /// Inflates a raw deflate stream that must end within `input`: every round consumes input or produces output,
    /// so it ends (the stream's end, a data error, or input exhausted before the end).
    static func inflate(_ input: ArraySlice<UInt8>, path: String, _ sink: ([UInt8]) throws(AMLError) -> Void) throws(AMLError) {
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw AMLError(.internalServerError, "ServiceError", "zlib could not be initialized")
        }
        defer { inflateEnd(&stream) }
        var bytes = Array(input)
        var output = [UInt8](repeating: 0, count: 1 << 16)
        let corrupt = AMLError.validation("projectZipFile entry \"\(path)\" is not a valid deflate stream")
        try bytes.withUnsafeMutableBufferPointer { (inBuffer) throws(AMLError) in
            stream.next_in = inBuffer.baseAddress
            stream.avail_in = uInt(inBuffer.count)
            while true {
                let before = stream.avail_in
                let (result, produced) = output.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    let r = CZlibCRC.inflate(&stream, Z_NO_FLUSH)
                    return (r, out.count - Int(stream.avail_out))
                }
                if produced > 0 { try sink(Array(output[0..<produced])) }
                if result == Z_STREAM_END { return }
                guard result == Z_OK, produced > 0 || stream.avail_in < before else { throw corrupt }
            }
        }
    }

    /// The archive's central directory by entry name. Zip64 archives are refused: a project within aml-local's
    /// limits never needs one.
    static func centralDirectory(_ zip: [UInt8]) throws(AMLError) -> [String: RawEntry] {
        let corrupt = AMLError.validation("projectZipFile is not a valid zip archive")
        guard zip.count >= 22 else { throw corrupt }
        var end = zip.count - 22
        let lowest = max(0, zip.count - 22 - 0xFFFF)
        while end >= lowest && u32(zip, end) != 0x0605_4b50 { end -= 1 }
        guard end >= lowest else { throw corrupt }
        let count = Int(u16(zip, end + 10)), offset = Int(u32(zip, end + 16))
        guard count != 0xFFFF, offset != 0xFFFF_FFFF else { throw AMLError.validation("projectZipFile is a zip64 archive; those are not accepted") }
        var records: [String: RawEntry] = [:]
        var p = offset
        for _ in 0..<count {
            guard p <= zip.count - 46, u32(zip, p) == 0x0201_4b50 else { throw corrupt }
            let compressed = u32(zip, p + 20), uncompressed = u32(zip, p + 24), local = u32(zip, p + 42)
            guard compressed != 0xFFFF_FFFF, uncompressed != 0xFFFF_FFFF, local != 0xFFFF_FFFF else {
                throw AMLError.validation("projectZipFile is a zip64 archive; those are not accepted")
            }
            let nameLength = Int(u16(zip, p + 28)), rest = Int(u16(zip, p + 30)) + Int(u16(zip, p + 32))
            guard nameLength <= zip.count - p - 46 else { throw corrupt }
            let name = String(decoding: zip[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            records[name] = RawEntry(method: u16(zip, p + 10), crc: u32(zip, p + 16), compressed: Int(compressed),
                                     uncompressed: Int(uncompressed), localHeader: Int(local))
            p += 46 + nameLength + rest
        }
        return records
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { UInt32(u16(b, at)) | UInt32(u16(b, at + 2)) << 16 }

    /// Writes the upload to a new file (mode 0600) in the temporary directory.
    private static func spool(_ bytes: [UInt8]) throws(AMLError) -> URL {
        var template = Array(FileManager.default.temporaryDirectory.appendingPathComponent("aml-upload-XXXXXX.zip").path.utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 4) }
        guard fd >= 0 else {
            throw AMLError(.internalServerError, "ServiceError", "projectZipFile could not be spooled: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let path = String(cString: template)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else {
                unlink(path)
                throw AMLError(.internalServerError, "ServiceError", "projectZipFile could not be spooled: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        return URL(fileURLWithPath: path)
    }
}
