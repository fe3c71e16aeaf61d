import Foundation
import Hummingbird
import HummingbirdTesting
import MLHookCore
import Signing
import Store
@testable import MLHookServer
import TestSupport
import Testing

/// A templated repository, ref or folder comes from a webhook payload: nothing in them may reach git as an option
/// or pick a transport that runs a command.
@Suite struct GitSourceTests {
    @Test(arguments: [
        ("--upload-pack=touch PWNED", "main", "."),
        ("-oProxyCommand=touch PWNED", "main", "."),
        ("ext::sh -c touch% PWNED", "main", "."),
        ("fd::17", "main", "."),
        ("file:///nonexistent", "--upload-pack=touch PWNED", "."),
        ("file:///nonexistent", "main..evil", "."),
        ("file:///nonexistent", "refs/heads/.hidden", "."),
        ("file:///nonexistent", "main", "--output=PWNED"),
        ("file:///nonexistent", "main", "../../etc"),
        ("file:///nonexistent", "main", "/etc"),
    ])
    func optionsAndCommandTransportsNeverReachGit(url: String, ref: String, folder: String) async throws {
        let dir = try TemporaryDirectory("mlhook-git-inject")
        defer { dir.remove() }
        let source = GitSource(cacheDirectory: dir.file("cache"))
        await #expect(throws: GitSource.Failure.self) {
            _ = try await source.zip(url: url.replacingOccurrences(of: "PWNED", with: dir.file("pwned")), commit: ref, folder: folder)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("pwned")))
        #expect(!FileManager.default.fileExists(atPath: dir.file("cache")), "refused before git ran")
    }

    /// The same refusals happen at planning: an event whose repository would reach git as an option plans no job.
    @Test func aPayloadThatWouldInjectIntoGitPlansNoJob() throws {
        let config = try MLHookConfig.parse(yaml: """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: train
                when: { source: github, kind: push }
                actions: [ { start_run: { experiment: e, dir: train, script: train.py, compute: cpu-cluster } } ]
            """, file: "t.yaml").config
        let body = try Fixtures.githubPush(commit: String(repeating: "a", count: 40), cloneURL: "--upload-pack=touch /tmp/pwned")
        let event = InboundEvent(id: EventID.make(), source: "github", kind: "push", deliveryID: "d", headers: [:],
                                 body: body, contentType: "application/json", receivedAt: Date())
        let decision = EventPlanner.decide(event, config: config)
        #expect(decision.jobs.isEmpty && decision.record.explanation.contains("start_run refused"), "\(decision.record.explanation)")
    }

    @Test func branchTagAndCommitNamesAreAccepted() throws {
        for ref in ["main", "release/1.2", "v1.0.0", "feature_x-y", String(repeating: "a", count: 40)] {
            #expect(throws: Never.self) { try GitSource.validate(url: "https://example.com/o/r.git", ref: ref, folder: "train") }
        }
    }

    /// A cached repository no job used within the retention is deleted; one in use stays.
    @Test func theCacheForgetsRepositoriesNoJobUses() async throws {
        let dir = try TemporaryDirectory("mlhook-git-prune")
        defer { dir.remove() }
        let sha = try await ProviderEndToEndTests().makeRepo(dir.file("repo"))
        let source = GitSource(cacheDirectory: dir.file("cache"))
        _ = try await source.zip(url: "file://" + dir.file("repo"), commit: sha, folder: ".")
        let cached = try FileManager.default.contentsOfDirectory(atPath: dir.file("cache")).filter { $0.hasSuffix(".git") }
        #expect(cached.count == 1)
        #expect(source.pruneCache(unusedSince: Date().addingTimeInterval(-30 * 86_400)) == 0, "used just now")
        let marker = dir.file("cache") + "/" + cached[0] + "/" + GitSource.usedMarker
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-40 * 86_400)], ofItemAtPath: marker)
        #expect(source.pruneCache(unusedSince: Date().addingTimeInterval(-30 * 86_400)) == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.file("cache") + "/" + cached[0]))
        // And it is fetched again when a job needs it.
        _ = try await source.zip(url: "file://" + dir.file("repo"), commit: sha, folder: ".")
    }
}

/// A source's events may name a repository only over the transports the source allows: by default not file://,
/// so a signed payload cannot make mlhook zip and run a repository that sits on its own disk (another project's
/// cached clone, say).
@Suite struct GitSchemeTests {
    @Test func aFileRepositoryFromAPayloadIsRefusedUnlessTheSourceAllowsIt() async throws {
        let dir = try TemporaryDirectory("mlhook-git-scheme")
        defer { dir.remove() }
        let sha = try await ProviderEndToEndTests().makeRepo(dir.file("repo"))
        let yaml = """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: train
                when: { source: github, kind: push }
                actions: [ { start_run: { experiment: e, dir: train, script: train.py, compute: cpu-cluster } } ]
            """
        #expect(try MLHookConfig.parse(yaml: yaml, file: "t.yaml").config.sources[0].gitSchemes == ["https", "ssh", "git", "http"])
        #expect(throws: ConfigError.self) { try MLHookConfig.parse(yaml: yaml.replacingOccurrences(of: "{ env: GH } ]", with: "{ env: GH } ], git_schemes: [ext]"), file: "t.yaml") }
        let strict = try MLHookConfig.parse(yaml: yaml, file: "t.yaml").config
        let open = try MLHookConfig.parse(yaml: yaml.replacingOccurrences(of: "{ env: GH } ]", with: "{ env: GH } ], git_schemes: [https, file]"),
                                          file: "t.yaml").config
        let body = try Fixtures.githubPush(commit: sha, cloneURL: "file://" + dir.file("repo"))
        let event = InboundEvent(id: EventID.make(at: IngressHarness.now), source: "github", kind: "push", deliveryID: "d", headers: [:],
                                 body: body, contentType: "application/json", receivedAt: IngressHarness.now)
        // At planning: no job at all, and the event says why.
        let refused = EventPlanner.decide(event, config: strict)
        #expect(refused.jobs.isEmpty && refused.record.state == .ignored, "\(refused.record.explanation)")
        #expect(refused.record.explanation.contains("git_schemes"), "\(refused.record.explanation)")
        // When the job runs (the configuration changed since it was planned): refused before git runs.
        // With the transport allowed throughout: fetched and started.
        for (runWith, expected) in [(strict, JobState.failed), (open, JobState.watching)] {
            let h = try IngressHarness(config: yaml)
            defer { h.dir.remove() }
            let decision = EventPlanner.decide(event, config: open)
            #expect(decision.jobs.count == 1)
            _ = try await h.store.append(event, plan: decision.record, jobs: decision.jobs)
            h.runtime.live.replace(config: runWith, sources: h.runtime.live.snapshot.sources.map(\.value))
            let fake = FakeAzureMLClient()
            let runner = JobRunner(store: h.store, live: h.runtime.live, client: { fake }, logger: h.runtime.logger,
                                   git: GitSource(cacheDirectory: h.dir.file("cache")), now: { IngressHarness.now })
            #expect(try await runner.runOne())
            let job = try #require(try await h.store.jobs(limit: nil, state: nil).first)
            #expect(job.state == expected, "\(job.lastError ?? "")")
            if expected == .failed {
                #expect(job.lastError?.contains("git_schemes") == true)
                #expect(fake.calls("startRun").isEmpty && !FileManager.default.fileExists(atPath: h.dir.file("cache")), "nothing was fetched")
            }
        }
    }

    /// The GitHub API throttled or down is worth another try (the job is retried with backoff); a pull request that
    /// is not there is not.
    @Test func aGitHubOutageIsRetryableAndAMissingPullRequestIsNot() async throws {
        let github = FakeGitHubAPI(token: "t")
        github.pulls["octo/ml#7"] = ["head": ["sha": .string(String(repeating: "b", count: 40))]]
        github.outages = 1
        try await Application(router: github.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0))).test(.live) { api in
            let base = "http://127.0.0.1:\(api.port!)"
            do {
                _ = try await CodeLocation.pullRequestHead(api: base, repository: "octo/ml", number: 7, token: WebhookSecret("t"))
                Issue.record("the outage was not reported")
            } catch let e as JobError {
                #expect(e.isRetryable, "\(e)")
            }
            let head = try await CodeLocation.pullRequestHead(api: base, repository: "octo/ml", number: 7, token: WebhookSecret("t"))
            #expect(head.sha == String(repeating: "b", count: 40))
            do {
                _ = try await CodeLocation.pullRequestHead(api: base, repository: "octo/ml", number: 8, token: WebhookSecret("t"))
                Issue.record("a missing pull request was not reported")
            } catch let e as JobError {
                #expect(!e.isRetryable && e.description.contains("404"), "\(e)")
            }
        }
    }

    /// A fetch from a server that accepts the connection and never answers is stopped at its timeout, with the
    /// remote helper git started for it (git-remote-http), instead of leaving that waiting for ever.
    @Test func aFetchThatHangsIsStoppedWithItsRemoteHelper() async throws {
        let dir = try TemporaryDirectory("mlhook-git-hang")
        defer { dir.remove() }
        // Listening, never accepting: the kernel completes the connection and git waits for an answer.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
                try #require(bind(listener, a, length) == 0 && listen(listener, 8) == 0 && getsockname(listener, a, &length) == 0)
            }
        }
        let url = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))/hang.git"
        let source = GitSource(cacheDirectory: dir.file("cache"))
        let cache = dir.file("cache.git")
        try await source.git(["init", "--bare", "-q", cache])
        let started = ContinuousClock.now
        do {
            try await source.git(["-C", cache, "fetch", "-q", "--end-of-options", url, "main"], timeout: .seconds(1))
            Issue.record("the fetch returned")
        } catch let e as GitSource.Failure {
            #expect(e.description.contains("took longer than"), "\(e)")
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        // Nothing that was fetching from the port is left running (a zombie waiting for its parent does not count).
        func fetching() -> [String] {
            let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return pids.filter { pid in
                guard pid.allSatisfy(\.isNumber),
                      let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !cmdline.isEmpty,
                      let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !stat.contains(") Z ") else { return false }
                return String(decoding: cmdline, as: UTF8.self).contains(url)
            }
        }
        var left = fetching()
        for _ in 0..<100 where !left.isEmpty {
            try await Task.sleep(for: .milliseconds(50))
            left = fetching()
        }
        #expect(left.isEmpty, "still running: \(left)")
    }
}
