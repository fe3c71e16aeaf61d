import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import MLHookCore
import MLHookServer
import NIOCore
import Signing
import Store
import TestSupport

/// A real app over a real SQLite file in a temp dir, with a fixed clock and captured logs.
struct IngressHarness {
    let dir: TemporaryDirectory
    let runtime: MLHookRuntime
    let store: any MLHookStore
    let logs: CapturedLogs
    let secrets: [String: String]

    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let standardKey = "whsec_" + ByteEncoding.base64(Array("0123456789abcdef0123456789abcdef".utf8))

    /// Every kind of source, each with its own secret from the environment.
    static let config = """
        server: { listen: "127.0.0.1:0", max_body_bytes: 65536 }
        sources:
          - { name: github, type: github, secrets: [ { env: GH }, { env: GH_OLD } ] }
          - { name: gitlab, type: gitlab, secrets: [ { env: GL } ] }
          - { name: gitea, type: gitea, secrets: [ { env: GT } ] }
          - { name: bitbucket, type: bitbucket, secrets: [ { env: BB } ] }
          - { name: slack, type: slack, secrets: [ { env: SL } ] }
          - { name: standard, type: standard, secrets: [ { env: SW } ] }
          - name: generic
            type: generic
            secrets: [ { env: GN } ]
            generic: { header: X-Signature, prefix: "sha256=", timestamp_header: X-Timestamp, delivery_header: X-Request-Id, event_header: X-Event }
        """

    init(config yaml: String = IngressHarness.config, now: Date = IngressHarness.now) throws {
        dir = try TemporaryDirectory()
        logs = CapturedLogs()
        secrets = ["GH": "gh-secret-current", "GH_OLD": "gh-secret-previous", "GL": "gl-token-123", "GT": "gitea-secret",
                   "BB": "bb-secret", "SL": "8f742231b10e8888abcd99yyyzzz85a5", "SW": Self.standardKey, "GN": "generic-secret"]
        var loaded = try MLHookConfig.parse(yaml: yaml, file: "test.yaml")
        loaded.config.store.backend = .sqlite(.init(path: dir.file("mlhook.db")))
        // The app's clock is fixed (`now`, weeks from the store's real one): a long retention keeps the in-app pruner
        // from taking rows the store stamped with the real time for old ones.
        loaded.config.store.retentionDays = 3650
        // Test repositories live on this machine: every source may name file:// ones (GitSchemeTests checks the default).
        loaded.config = Self.allowingFileRepositories(loaded.config)
        let logger = logs.logger(level: .info)
        let sources = try MLHookRuntime.resolveSources(loaded.config, logger: logger, environment: secrets)
        store = try SQLiteStore(path: dir.file("mlhook.db"), logger: logger)
        // The scheduler's clock is fixed too: on the machine's clock, a rule's cron tick within its catch-up hour
        // (the PlanningTests nightly at 03:00 Berlin, between 02:00 and 03:00 UTC) fired inside tests that count events.
        runtime = MLHookRuntime(config: loaded.config, sources: sources, store: store, logger: logger, now: { now },
                                schedulerClock: ManualClock(now))
    }

    func secret(_ env: String) -> WebhookSecret { WebhookSecret(secrets[env]!) }

    static func allowingFileRepositories(_ config: MLHookConfig) -> MLHookConfig {
        var config = config
        for i in config.sources.indices where !config.sources[i].gitSchemes.contains("file") { config.sources[i].gitSchemes.append("file") }
        return config
    }

    /// Puts `yaml`'s rules in force, as a reload would, keeping the sources already resolved.
    func install(_ yaml: String) throws {
        let config = Self.allowingFileRepositories(try MLHookConfig.parse(yaml: yaml, file: "t.yaml").config)
        runtime.live.replace(config: config, sources: runtime.live.snapshot.sources.map(\.value))
    }

    /// Posts a slash command's form to `/hooks/slack`, signed with the `SL` secret.
    /// - Returns: The answer's status and body.
    func postSlackCommand(_ form: String) async throws -> (status: HTTPResponse.Status, body: String) {
        let body = Array(form.utf8)
        let headers = HTTPFields(try WebhookSigner.slack(secret: secret("SL"), body: body, timestamp: Int(Self.now.timeIntervalSince1970))
            .map { ($0.name, $0.value) } + [("Content-Type", "application/x-www-form-urlencoded")])
        return try await app.test(.router) { client in
            try await client.execute(uri: "/hooks/slack", method: .post, headers: headers, body: ByteBuffer(bytes: body)) { ($0.status, String(buffer: $0.body)) }
        }
    }

    var app: some ApplicationProtocol { buildApplication(runtime) }

    func count() async throws -> Int { try await store.list(limit: nil, source: nil).count }

    /// Lines logged at notice or above (rejections), and whether any line leaked a secret.
    var rejections: [CapturedLogs.Line] { logs.lines.filter { $0.level >= .notice } }

    func leakedSecrets() -> [String] {
        let all = logs.lines.map(\.text).joined(separator: "\n")
        return secrets.values.filter { all.contains($0) }
    }
}

extension HTTPFields {
    init(_ pairs: [(String, String)]) {
        self.init()
        for (k, v) in pairs { append(HTTPField(name: HTTPField.Name(k)!, value: v)) }
    }
}

/// The decoded JSON body of a test response.
func object(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
}
