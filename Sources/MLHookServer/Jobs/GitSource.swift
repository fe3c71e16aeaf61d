import ChildProcess
import Foundation
import MLHookCore
import Signing

/// Fetches commits with the real `git` into a cache of bare repositories and zips a folder of a commit.
///
/// Nothing here goes through a shell: git gets an argument vector. `git archive` writes the folder's tree at
/// that commit, so `.git` is never included and the entries come from the commit, not from a work tree.
public struct GitSource: Sendable {
    /// What git inherits from the server's environment.
    static let inheritedNames: Set<String> = ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
                                              "GIT_SSL_CAINFO", "GIT_SSH_COMMAND", "SSH_AUTH_SOCK", "http_proxy", "https_proxy", "no_proxy",
                                              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"]

    /// Where bare caches live (one per clone URL).
    public let cacheDirectory: String
    /// The largest zip accepted.
    public let maxZipBytes: Int

    public init(cacheDirectory: String, maxZipBytes: Int = 200 << 20) {
        self.cacheDirectory = cacheDirectory
        self.maxZipBytes = maxZipBytes
    }

    /// A failed git step, with its stderr.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Credentials for an https remote: sent as HTTP Basic (`user:token`) through git's `http.extraHeader`,
    /// passed in git's environment (`GIT_CONFIG_*`), so the token is never in an argument vector, a URL,
    /// the cache's config or an error message.
    public struct Credentials: Sendable {
        public var user: String
        public var token: WebhookSecret
        public init(user: String = "x-access-token", token: WebhookSecret) {
            self.user = user
            self.token = token
        }
    }

    /// The zip of `folder` (relative, "." for the root) at `commit` of `url`.
    /// - Parameters:
    ///   - commit: A commit id, or a branch or tag name (fetched and resolved now).
    ///   - credentials: For https remotes (plain http only to a loopback host); refused for others.
    /// - Returns: The zip and the commit id it was made from.
    public func zip(url: String, commit: String, folder: String, credentials: Credentials? = nil) async throws -> (zip: [UInt8], commit: String) {
        try Self.validate(url: url, ref: commit, folder: folder)
        var environment: [String: String] = [:]
        if let credentials {
            guard TokenDestination.allows(url) else {
                throw Failure(description: "a token is sent only over https (the repository is \(Self.redacted(url)))")
            }
            let basic = ByteEncoding.base64(Array("\(credentials.user):\(credentials.token.text)".utf8))
            environment = ["GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": "Authorization: Basic \(basic)"]
        }
        let cache = cacheDirectory + "/" + Digest.sha256Hex(Array(url.utf8)) + ".git"
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: cache) {
            try await git(["init", "--bare", "-q", cache])
        }
        var commit = commit
        if Self.isCommitID(commit) {
            // Fetch only if the commit is not cached yet (a retry or a second rule reuses it).
            if (try? await git(["-C", cache, "cat-file", "-e", commit + "^{commit}"])) == nil {
                try await git(["-C", cache, "fetch", "-q", "--no-tags", "--end-of-options", url, commit], environment: environment,
                              timeout: Self.fetchTimeout)
            }
        } else {
            // A branch or tag moves: fetch it every time and pin the commit it names now.
            try await git(["-C", cache, "fetch", "-q", "--no-tags", "--end-of-options", url, commit], environment: environment,
                          timeout: Self.fetchTimeout)
            commit = try await output(["-C", cache, "rev-parse", "--verify", "FETCH_HEAD^{commit}"])
        }
        // The zip holds private code: written in an owner-only folder, whatever the umask.
        // Absolute: git resolves -o against -C's directory, and the cache directory may be relative.
        let archives = URL(fileURLWithPath: cacheDirectory + "/.archives").standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: archives, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let out = archives + "/\(UUID().uuidString).zip"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tree = folder == "." || folder.isEmpty ? commit : "\(commit):\(folder)"
        try await git(["-C", cache, "archive", "--format=zip", "-o", out, "--end-of-options", tree])
        // When this repository was last used, for pruneCache.
        FileManager.default.createFile(atPath: cache + "/" + Self.usedMarker, contents: nil)
        guard let data = FileManager.default.contents(atPath: out) else { throw Failure(description: "git archive wrote nothing") }
        guard data.count <= maxZipBytes else { throw Failure(description: "\(folder) at \(commit.prefix(12)) zips to more than \(maxZipBytes) bytes") }
        return ([UInt8](data), commit)
    }

    /// A file in each cached repository whose modification time is when a job last used it.
    static let usedMarker = "mlhook-last-used"

    /// Deletes the cached repositories no job has used since `cutoff` (a repository no rule fetches any more
    /// would otherwise stay for ever). - Returns: how many were deleted.
    @discardableResult
    public func pruneCache(unusedSince cutoff: Date) -> Int {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: cacheDirectory) else { return 0 }
        var deleted = 0
        for name in names where name.hasSuffix(".git") {
            let repo = cacheDirectory + "/" + name
            let stamp = (try? fm.attributesOfItem(atPath: repo + "/" + Self.usedMarker))?[.modificationDate] as? Date
                ?? (try? fm.attributesOfItem(atPath: repo))?[.modificationDate] as? Date ?? .distantFuture
            if stamp < cutoff, (try? fm.removeItem(atPath: repo)) != nil { deleted += 1 }
        }
        return deleted
    }

    /// Transports a repository URL may use (git's `ext::` and `fd::` run commands; they are never allowed).
    static let allowedSchemes: Set<String> = ["https", "http", "ssh", "git", "file"]

    /// Longest a fetch may take; other git commands get `defaultTimeout`.
    static let fetchTimeout: Duration = .seconds(600)
    static let defaultTimeout: Duration = .seconds(120)

    /// Refuses what could make git do something else than fetch and archive: an option where a URL, ref or
    /// folder goes (`--upload-pack=…`), a transport outside `allowedSchemes`, or a malformed ref or path.
    /// - Throws: `Failure` naming the value.
    static func validate(url: String, ref: String, folder: String) throws {
        guard !url.hasPrefix("-"), let scheme = url.split(separator: ":", maxSplits: 1).first.map({ $0.lowercased() }),
              url.contains("://"), allowedSchemes.contains(scheme) else {
            throw Failure(description: "the repository \(redacted(url).prefix(200)) is not a URL with one of the schemes \(allowedSchemes.sorted().joined(separator: ", "))")
        }
        guard isCommitID(ref) || isRefName(ref) else {
            throw Failure(description: "the ref \"\(ref.prefix(100))\" is neither a commit id nor a branch or tag name")
        }
        let parts = folder.split(separator: "/")
        guard !folder.hasPrefix("-"), !folder.hasPrefix("/"), !parts.contains(".."), !folder.contains("\0"), folder.count <= 1024 else {
            throw Failure(description: "the folder \"\(folder.prefix(100))\" must be a relative path inside the repository")
        }
    }

    /// A branch or tag name as git accepts them (git check-ref-format), kept to a safe alphabet.
    static func isRefName(_ ref: String) -> Bool {
        let allowed = ref.utf8.allSatisfy { b in
            (48...57).contains(b) || (65...90).contains(b) || (97...122).contains(b) || [UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                                                                                          UInt8(ascii: "/")].contains(b)
        }
        return allowed && !ref.isEmpty && ref.count <= 255 && !ref.hasPrefix("-") && !ref.hasPrefix("/") && !ref.hasSuffix("/")
            && !ref.hasSuffix(".") && !ref.hasSuffix(".lock") && !ref.contains("..") && !ref.contains("//")
            && !ref.split(separator: "/").contains { $0.hasPrefix(".") }
    }

    /// Whether `ref` is a full commit id (40 or 64 hex digits).
    static func isCommitID(_ ref: String) -> Bool {
        (ref.count == 40 || ref.count == 64) && ref.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The trimmed standard output of a git command.
    public func output(_ arguments: [String]) async throws -> String {
        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-git-out-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        try await git(arguments, stdoutPath: outPath)
        return String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// git's message with the user-info of any URL in it removed.
    static func scrub(_ message: String) -> String {
        message.split(separator: " ", omittingEmptySubsequences: false).map { word in
            word.contains("://") && word.contains("@") ? redacted(String(word.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")))) : String(word)
        }.joined(separator: " ")
    }

    /// A URL without its user-info part (`https://user:secret@host/…` → `https://host/…`).
    static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url), c.user != nil || c.password != nil else { return url }
        c.user = nil
        c.password = nil
        return c.string ?? "<url>"
    }

    @discardableResult
    func git(_ arguments: [String], stdoutPath: String? = nil, environment extra: [String: String] = [:],
             timeout: Duration = GitSource.defaultTimeout) async throws -> String {
        // Not the server's environment (webhook secrets, the admin token, the Azure client secret): git and the
        // hooks or helpers it may run get the basics only.
        var env = ProcessInfo.processInfo.environment.filter { Self.inheritedNames.contains($0.key) }
        env["GIT_TERMINAL_PROMPT"] = "0"  // never wait for a password
        env["GIT_ALLOW_PROTOCOL"] = Self.allowedSchemes.sorted().joined(separator: ":")
        env.merge(extra) { _, new in new }
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-git-\(UUID().uuidString)").path
        let err = open(errPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard err >= 0 else { throw Failure(description: "cannot capture git's stderr") }
        defer { unlink(errPath) }
        var out: Int32? = nil
        if let stdoutPath {
            let fd = open(stdoutPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { close(err); throw Failure(description: "cannot write \(stdoutPath)") }
            out = fd
        }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn("/usr/bin/env", ["git"] + arguments, environment: env, output: out, error: err)
        } catch {
            close(err)
            if let out { close(out) }
            throw Failure(description: "cannot start git: \(error)")
        }
        close(err)
        if let out { close(out) }
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            child.signalGroup(SIGKILL)  // git and the remote helper it started (git-remote-https)
        }
        let ended = await child.wait()
        watchdog.cancel()
        if ended == .signaled(SIGKILL) {
            throw Failure(description: "git \(arguments.first(where: { !$0.hasPrefix("-") && !$0.hasPrefix("/") }) ?? "") took longer than \(timeout) and was stopped")
        }
        let status = ended.status
        guard status == 0 else {
            let text = String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self)
            let command = arguments.first(where: { !$0.hasPrefix("-") && !$0.hasPrefix("/") }) ?? ""
            throw Failure(description: "git \(command) failed (\(status)): \(Self.scrub(text.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        return ""
    }
}
