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
        let hang = Router()
        hang.post("**") { _, _ -> Response in
            try await Task.sleep(for: .seconds(6))  // past the 4 s timeout below
            return Response(status: .ok)
        }
        let good = Receiver(failFirst: 0)
        try await Application(router: hang, configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { dead in
            try await Application(router: good.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { ok in
                // The dead receiver's callback is first in line.
                for (i, url) in ["http://127.0.0.1:\(dead.port!)/hook", "http://127.0.0.1:\(ok.port!)/hook"].enumerated() {
                    _ = try await h.store.enqueueCallback(NewCallback(jobID: "job_\(i)", eventID: "evt_\(i)", rule: "r", targetIndex: 0,
                                                                      kind: "slack", url: url, body: "{\"text\":\"\(i)\"}"))
                }
                var deliverer = CallbackDeliverer(store: h.store, live: h.runtime.live, logger: h.runtime.logger)
                deliverer.timeout = .seconds(4)
                let started = ContinuousClock.now
                let pass = Task { [deliverer] in try await deliverer.deliverDue() }
                while good.accepted.isEmpty && ContinuousClock.now - started < .seconds(10) { try await Task.sleep(for: .milliseconds(20)) }
                #expect(good.accepted.count == 1)
                #expect(ContinuousClock.now - started < .seconds(2), "the live receiver waited for the dead one's timeout")
                #expect(try await pass.value == 2)
                let dead = try await h.store.callbacks(limit: nil, state: .pending)
                #expect(dead.count == 1 && dead.first?.lastError != nil, "the dead receiver's callback waits for its retry")
            }
        }
    }
}
