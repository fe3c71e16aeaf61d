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
        let fm = FileManager.default
        // What was really written so far: a deflate stream can inflate past the size its entry declares,
        // so each entry is held to what it declares and all of them together to maxBytes.
        var writtenInAll = 0
        for entry in entries {
            let target = directory.appendingPathComponent(entry.path)
            do {
                if entry.type == .directory {
                    try fm.createDirectory(at: target, withIntermediateDirectories: true)
                    continue
                }
                try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                fm.createFile(atPath: target.path, contents: nil)
                let handle = try FileHandle(forWritingTo: target)
                defer { try? handle.close() }
                var written: UInt64 = 0
                _ = try archive.extract(entry, skipCRC32: false) { chunk in
                    written += UInt64(chunk.count)
                    writtenInAll += chunk.count
                    guard written <= entry.uncompressedSize, writtenInAll <= maxBytes else {
                        throw AMLError.validation("projectZipFile entry \"\(entry.path)\" is larger than it declares")
                    }
                    handle.write(chunk)
                }
            } catch let e as AMLError {
                throw e
            } catch {
                throw AMLError.validation("projectZipFile entry \"\(entry.path)\" could not be extracted: \(error)")
            }
        }
    }

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
