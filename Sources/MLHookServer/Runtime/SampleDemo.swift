import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import MLHookCore
import NIOCore
import Signing
import Store

/// The bundled sample of the embedded defaults: a git repository with a small training script, a signed push
/// of its commit sent to the service itself once it listens, the progress printed, and the callback received
/// (and its signature verified) at `/sample/callback`. A newcomer sees the whole loop from one command.
public struct SampleDemo: Sendable {
    let directory: String
    let store: any OperatorView
    let live: LiveConfig
    let logger: Logger
    let print: @Sendable (String) -> Void

    public init(directory: String = ".mlhook/sample-repo", store: any OperatorView, live: LiveConfig, logger: Logger,
                print: @escaping @Sendable (String) -> Void = { Swift.print($0); fflush(nil) }) {
        self.directory = directory
        self.store = store
        self.live = live
        self.logger = logger
        self.print = print
    }

    /// `POST /sample/callback`: checks the signature with the sample's callback secret and prints what arrived.
    func addRoutes(to router: Router<some RequestContext>) {
        router.post("/sample/callback") { request, _ -> Response in
            let body = Array(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            var verified = false
            if let rule = self.live.snapshot.config.rules.first(where: { $0.name == "sample-train" }), case .url(_, let ref)? = rule.callbacks.first,
               let secret = try? SecretResolver().resolve(ref, key: "sample"),
               let verifier = try? StandardWebhooksVerifier(secrets: [CallbackDeliverer.standardKey(secret)]) {
                verified = body.withUnsafeBytes { raw in (try? verifier.verify(headers: request.headers, body: raw, now: Date())) != nil }
            }
            let doc = JSONValue(json: body) ?? .null
            let run = doc.value(at: "data.result.job_name")?.string ?? doc.value(at: "data.result.run_id")?.string ?? "-"
            let model = doc.value(at: "data.result.model")?.string.map { ", model \($0)" } ?? ""
            self.print("sample: callback received (signature \(verified ? "verified" : "NOT verified")): job \(doc.value(at: "data.status")?.string ?? "?"), Azure ML job \(run) \(doc.value(at: "data.result.status")?.string ?? "")\(model)")
            return Response(status: verified ? .ok : .unauthorized)
        }
    }

    /// Where the id of the event the sample sent is kept (inside the repository's `.git`, so it goes with it).
    var sentFile: String { directory + "/.git/mlhook-sample-event" }

    /// Creates the sample repository (once), sends a signed push of its commit to `port`, and prints progress.
    /// Once: on later starts it prints how the first one ended and how to send a push again, while the store still
    /// has that event.
    public func run(port: Int) async {
        do {
            let sha = try await prepareRepository()
            if let sent = try? String(contentsOfFile: sentFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
               let event = try await store.event(id: sent) {
                let jobs = try await store.jobs(JobQuery(eventID: sent))
                let outcome = jobs.map { "job \($0.rule) \($0.action): \($0.state.rawValue)" }.joined(separator: ", ")
                self.print("sample: sent at an earlier start (\(sent), event \(event.summary.state.rawValue)\(outcome.isEmpty ? "" : ", " + outcome)); not sent again.")
                self.print("sample: to push a change: commit it in \(directory) and run: mlhook send github push --wait")
                return
            }
            let path = URL(fileURLWithPath: directory).standardizedFileURL.path
            let payload: JSONValue = [
                "ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000", "after": .string(sha),
                "repository": ["full_name": "mlhook/sample", "name": "sample", "clone_url": .string("file://\(path)"), "default_branch": "main"],
                "commits": [["id": .string(sha), "added": [], "modified": ["train/train.py"], "removed": []]],
                "sender": ["login": .string(ProcessInfo.processInfo.environment["USER"] ?? "you")],
            ]
            let body = Array(payload.text.utf8)
            guard let source = live.snapshot.config.source(named: "github"), let ref = source.secrets.first else { return }
            let secret = try SecretResolver().resolve(ref, key: "sources[github].secrets[0]")
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/hooks/github")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "X-GitHub-Event", value: "push")
            request.headers.add(name: "X-GitHub-Delivery", value: "sample-\(sha)")
            for h in try WebhookSigner.github(secret: secret, body: body) { request.headers.add(name: h.name, value: h.value) }
            request.body = .bytes(ByteBuffer(bytes: body))
            self.print("sample: sending a signed GitHub push of mlhook/sample@\(sha.prefix(7)) to http://127.0.0.1:\(port)/hooks/github")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let answer = String(buffer: try await response.body.collect(upTo: 1 << 16))
            self.print("sample: \(response.status.code) \(answer)")
            guard let eventID = JSONValue(json: Array(answer.utf8))?["event_id"]?.string else { return }
            try? eventID.write(toFile: sentFile, atomically: true, encoding: .utf8)
            try await follow(eventID)
        } catch {
            logger.warning("sample: \(error)")
        }
    }

    func follow(_ eventID: String) async throws {
        var said: Set<String> = []
        for _ in 0..<1200 {
            if let e = try await store.event(id: eventID) {
                let jobs = try await store.jobs(JobQuery(eventID: eventID))
                let callbacks = try await store.callbacks(CallbackQuery(eventID: eventID))
                var lines = ["sample: event \(e.summary.state.rawValue)"]
                lines += jobs.map { "sample: job \($0.rule) \($0.action): \($0.state.rawValue)" }
                lines += callbacks.map { "sample: callback \($0.state.rawValue)" }
                for l in lines where said.insert(l).inserted { self.print(l) }
                if e.summary.state == .ignored { self.print(e.explanation ?? ""); return }
                if !jobs.isEmpty && jobs.allSatisfy({ [.succeeded, .failed, .dead].contains($0.state) }) && !callbacks.isEmpty
                    && callbacks.allSatisfy({ $0.state != .pending }) {
                    self.print("sample: done. Try: mlhook events ls · mlhook jobs ls · mlhook callbacks ls")
                    return
                }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// The sample repository's commit, creating the repository on first use.
    func prepareRepository() async throws -> String {
        let fm = FileManager.default
        if !fm.fileExists(atPath: directory + "/.git") {
            try fm.createDirectory(atPath: directory + "/train", withIntermediateDirectories: true)
            try """
                # The bundled sample: a tiny "training" job that mlhook submits to the local Azure ML server. What it
                # writes to outputs/model becomes a version of sample-model once the job is Completed.
                import os, sys, time
                print("training the sample model with", sys.argv[1:])
                loss = 1.0
                for epoch in range(3):
                    time.sleep(0.2)
                    loss = 1.0 / (epoch + 2)
                    print(f"epoch {epoch + 1}: loss {loss:.3f}")
                os.makedirs("outputs/model", exist_ok=True)
                with open("outputs/model/model.txt", "w") as f:
                    f.write(f"loss {loss:.3f}\\n")
                print("done")

                """.write(toFile: directory + "/train/train.py", atomically: true, encoding: .utf8)
            let git = GitSource(cacheDirectory: "")
            try await git.git(["-C", directory, "init", "-q", "-b", "main"])
            try await git.git(["-C", directory, "add", "."])
            try await git.git(["-C", directory, "-c", "user.email=sample@mlhook.local", "-c", "user.name=mlhook sample", "commit", "-q", "-m", "sample training script"])
        }
        return try await GitSource(cacheDirectory: "").output(["-C", directory, "rev-parse", "HEAD"])
    }
}
