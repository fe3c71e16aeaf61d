import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP client for requests no HTTP library will send: truncated bodies, oversized chunked bodies.
public enum RawHTTP {
    /// Connects to 127.0.0.1:`port`, writes `bytes`, optionally half-closes, and reads until the server closes,
    /// `complete` says the response is whole, or `readTimeout` passes.
    /// - Returns: What the server answered (possibly empty).
    public static func exchange(port: Int, _ bytes: [UInt8], closeAfterWrite: Bool, readTimeout: TimeInterval = 5,
                                complete: (String) -> Bool = { _ in false }) -> String {
        guard let connection = RawConnection(port: port) else { return "" }
        connection.send(bytes)
        if closeAfterWrite { connection.closeWrite() }
        return connection.read(timeout: Int(readTimeout), complete: complete)
    }
}

/// A TCP connection to 127.0.0.1 written in parts, for requests that must be in flight at a given moment.
// @unchecked Sendable: one test uses a connection from one task at a time (through offCooperativePool).
public final class RawConnection: @unchecked Sendable {
    private let fd: Int32

    /// Connects, or returns nil when nothing accepts on the port.
    public init?(port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { Glibc.close(fd); return nil }
        self.fd = fd
    }

    public func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Half-closes: the peer sees the end of the request body.
    public func closeWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Closes the socket now (the peer sees the connection end).
    public func close() { shutdown(fd, Int32(SHUT_RDWR)) }

    /// Whether the peer has not closed the connection (nothing waiting to be read says otherwise).
    public var isOpen: Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return true }
        if p.revents & Int16(POLLHUP | POLLERR) != 0 { return false }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n > 0 || (n < 0 && errno == EAGAIN)
    }

    /// Reads until the peer closes, `complete` holds, or `timeout` seconds pass without data.
    public func read(timeout: Int = 5, complete: (String) -> Bool = { _ in false }) -> String {
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var response = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buf[0..<n]
            if complete(String(decoding: response, as: UTF8.self)) { break }
        }
        return String(decoding: response, as: UTF8.self)
    }

    deinit { Glibc.close(fd) }
}

/// Runs blocking socket I/O on a Dispatch thread instead of the Swift concurrency pool. A blocking read on the
/// pool (2 threads on a 2-core machine) can hold the very thread the in-process server needs to answer it: two
/// such tests at once starved each other until their 10 s read timeouts.
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: body()) }
    }
}
