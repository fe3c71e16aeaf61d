import Foundation
import Hummingbird
import NIOCore
import Signing

#if canImport(Glibc)
import Glibc
#endif

/// A request body written to a file as it arrives, with its size and MD5: a blob upload takes disk, not memory.
///
/// The file is private to aml-local (`{data}/incoming`, mode 0600, never under a container's folder) until the
/// route moves it into place; whatever the route does not take is removed when the request ends.
struct SpooledBody: Sendable {
    let file: URL
    let size: Int
    let md5: [UInt8]

    enum Failure: Error {
        /// More than the limit arrived; the file is removed and the rest of the body is not read.
        case tooLarge
        case io(String)
    }

    /// Receives `body` into a new file under `directory`, refusing past `limit` bytes.
    static func receive(_ body: RequestBody, into directory: URL, limit: Int) async throws -> SpooledBody {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let file = directory.appendingPathComponent(UUID().uuidString.lowercased())
        let fd = open(file.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure.io("cannot create \(file.path): \(String(cString: strerror(errno)))") }
        var closed = false
        var kept = false
        defer {
            if !closed { close(fd) }
            if !kept { unlink(file.path) }
        }
        let md5 = MD5Stream()
        var size = 0
        for try await chunk in body {
            size += chunk.readableBytes
            guard size <= limit else { throw Failure.tooLarge }
            try chunk.withUnsafeReadableBytes { bytes in
                md5.update(bytes)
                var offset = 0
                while offset < bytes.count {
                    let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw Failure.io("cannot write \(file.path): \(String(cString: strerror(errno)))")
                    }
                    offset += n
                }
            }
        }
        closed = true
        guard close(fd) == 0 else { throw Failure.io("cannot write \(file.path): \(String(cString: strerror(errno)))") }
        kept = true
        return SpooledBody(file: file, size: size, md5: md5.finish())
    }

    /// Moves the file to `destination` (same file system), replacing what was there: a reader sees the old blob or
    /// the new one, never part of one.
    func move(to destination: URL) throws {
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard rename(file.path, destination.path) == 0 else {
            throw Failure.io("cannot move the upload to \(destination.path): \(String(cString: strerror(errno)))")
        }
    }

    /// Removes the file if it is still in the spool.
    func discard() { unlink(file.path) }
}

/// A file sent as a response body in chunks, never whole in memory.
enum FileResponse {
    static let chunk = 128 << 10

    /// The file open for reading and its size, taken from the open file (a blob replaced meanwhile is sent whole,
    /// old or new), or nil when it cannot be opened.
    static func open(_ path: String) -> (handle: FileHandle, size: Int)? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        var st = stat()
        guard fstat(handle.fileDescriptor, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { try? handle.close(); return nil }
        return (handle, Int(st.st_size))
    }

    /// The body that sends `size` bytes of `handle` and closes it.
    static func body(_ handle: FileHandle, size: Int) -> ResponseBody {
        ResponseBody(contentLength: size) { writer in
            defer { try? handle.close() }
            var sent = 0
            while sent < size, let data = try handle.read(upToCount: min(chunk, size - sent)), !data.isEmpty {
                try await writer.write(ByteBuffer(bytes: data))
                sent += data.count
            }
            try await writer.finish(nil)
        }
    }
}
