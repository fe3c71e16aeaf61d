import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on an aml-local data directory (`DIR/.lock`, flock), held while a server uses it: a second
/// `mlhook aml-local` (or `mlhook serve` with the embedded one) on the same directory is refused instead of
/// overwriting `credentials.json` with its own port and running beside the first.
final class DataDirectoryLock: Sendable {
    private let fd: Int32

    /// Takes the lock. - Throws: `InUse` naming the directory (and the holder's pid when it wrote one).
    init(directory: String) throws {
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw InUse(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let holder = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            throw InUse(description: "the data directory \(directory) is in use by another aml-local" + (holder.isEmpty ? "" : " (pid \(holder))")
                        + "; stop it, or give this one another --data-dir")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        self.fd = fd
    }

    /// Gives the lock up (also when the process ends).
    func release() { _ = flock(fd, LOCK_UN) }

    deinit { close(fd) }

    struct InUse: Error, CustomStringConvertible { let description: String }
}
