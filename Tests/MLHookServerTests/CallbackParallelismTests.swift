import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import MLHookServer
import Store
import TestSupport
import Testing

/// Callbacks to different receivers go out in parallel: a receiver that never answers delays only its own.
@Suite struct CallbackParallelismTests {
    @Test func aDeadReceiverDoesNotDelayTheOthers() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        // A receiver that takes the connection and never answers: a listening socket nobody reads.
        let dead = try #require(SilentListener())
        let good = Receiver(failFirst: 0)
        do {
            try await Application(router: good.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { ok in
                // The dead receiver's callback is first in line.
                for (i, url) in ["http://127.0.0.1:\(dead.port)/hook", "http://127.0.0.1:\(ok.port!)/hook"].enumerated() {
                    _ = try await h.store.enqueueCallback(NewCallback(jobID: "job_\(i)", eventID: "evt_\(i)", rule: "r", targetIndex: 0,
                                                                      kind: "slack", url: url, body: "{\"text\":\"\(i)\"}"))
                }
                var deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.runtime.logger)
                deliverer.timeout = .seconds(8)
                let started = ContinuousClock.now
                let pass = Task { [deliverer] in try await deliverer.deliverDue() }
                while good.accepted.isEmpty && ContinuousClock.now - started < .seconds(10) { try await Task.sleep(for: .milliseconds(20)) }
                #expect(good.accepted.count == 1)
                #expect(ContinuousClock.now - started < .seconds(6), "the live receiver waited for the dead one's 8 s timeout")
                #expect(try await pass.value == 2)
                let pending = try await h.store.callbacks(limit: nil, state: .pending)
                #expect(pending.count == 1 && pending.first?.lastError != nil, "the dead receiver's callback waits for its retry")
            }
        }
    }
}

/// A receiver that refuses the connection (nothing listens on its port) costs an attempt its refusal, and the
/// callback records why. Before, the HTTP client kept trying to connect until the 10 s deadline, every attempt.
@Suite struct RefusedCallbackTests {
    @Test func aRefusedConnectionIsOneQuickFailedAttemptThatSaysSo() async throws {
        let h = try IngressHarness()
        defer { h.dir.remove() }
        let port = try #require(SilentListener()).port  // closed again at once: nothing listens there now
        _ = try await h.store.enqueueCallback(NewCallback(jobID: "job_r", eventID: "evt_r", rule: "r", targetIndex: 0,
                                                          kind: "slack", url: "http://127.0.0.1:\(port)/hook", body: "{\"text\":\"r\"}"))
        var deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.runtime.logger)
        deliverer.timeout = .seconds(30)
        #expect(try await deliverer.deliverDue() == 1)
        let pending = try await h.store.callbacks(limit: nil, state: .pending)
        #expect(pending.first?.lastError == "cannot deliver: connection refused", "\(String(describing: pending.first?.lastError))")
    }
}

/// A TCP port that accepts connections into its backlog and never reads or answers them.
final class SilentListener: Sendable {
    let fd: Int32
    let port: Int

    init?() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard fd >= 0, bound == 0, listen(fd, 16) == 0 else { return nil }
        let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard named == 0 else { return nil }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}
