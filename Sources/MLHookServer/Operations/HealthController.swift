import Hummingbird
import Store

/// `GET /healthz` (the process answers) and `GET /readyz` (the store answers, config is loaded).
struct HealthController: Sendable {
    let store: any Inbox

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("/healthz") { _, _ in json(.ok, ["status": "ok"]) }
        router.get("/readyz") { _, _ in
            await store.isReady() ? json(.ok, ["status": "ready"])
                : json(.serviceUnavailable, ["status": "not_ready", "message": "the store does not answer"])
        }
    }
}
