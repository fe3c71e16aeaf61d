import Foundation
import Signing

/// Fetches commits with the real `git` into a cache of bare repositories and zips a folder of a commit.
///
/// Nothing here goes through a shell: git gets an argument vector. `git archive` writes the folder's tree at
/// that commit, so `.git` is never included and the entries come from the commit, not from a work tree.
public struct GitSource: Sendable {
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
        var environment: [String: String] = [:]
        if let credentials {
            guard let u = URL(string: url), let scheme = u.scheme?.lowercased(),
                  scheme == "https" || (scheme == "http" && ["127.0.0.1", "localhost", "::1", "[::1]"].contains(u.host ?? "")) else {
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
                try await git(["-C", cache, "fetch", "-q", "--no-tags", url, commit], environment: environment)
            }
        } else {
            // A branch or tag moves: fetch it every time and pin the commit it names now.
            try await git(["-C", cache, "fetch", "-q", "--no-tags", url, commit], environment: environment)
            commit = try await output(["-C", cache, "rev-parse", "--verify", "FETCH_HEAD^{commit}"])
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-\(UUID().uuidString).zip").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tree = folder == "." || folder.isEmpty ? commit : "\(commit):\(folder)"
        try await git(["-C", cache, "archive", "--format=zip", "-o", out, tree])
        guard let data = FileManager.default.contents(atPath: out) else { throw Failure(description: "git archive wrote nothing") }
        guard data.count <= maxZipBytes else { throw Failure(description: "\(folder) at \(commit.prefix(12)) zips to more than \(maxZipBytes) bytes") }
        return ([UInt8](data), commit)
    }

    /// Whether `ref` is a full commit id (40 or 64 hex digits).
    static func isCommitID(_ ref: String) -> Bool {
        (ref.count == 40 || ref.count == 64) && ref.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The trimmed standard output of a git command.
    func output(_ arguments: [String]) async throws -> String {
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
    func git(_ arguments: [String], stdoutPath: String? = nil, environment extra: [String: String] = [:]) async throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["GIT_TERMINAL_PROMPT"] = "0"  // never wait for a password
        env.merge(extra) { _, new in new }
        p.environment = env
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-git-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        guard let err = FileHandle(forWritingAtPath: errPath) else { throw Failure(description: "cannot capture git's stderr") }
        defer { try? err.close() }
        p.standardError = err
        if let stdoutPath {
            FileManager.default.createFile(atPath: stdoutPath, contents: nil)
            p.standardOutput = FileHandle(forWritingAtPath: stdoutPath) ?? FileHandle.nullDevice
        } else {
            p.standardOutput = FileHandle.nullDevice
        }
        p.standardInput = FileHandle.nullDevice
        let status: Int32 = await withCheckedContinuation { c in
            p.terminationHandler = { c.resume(returning: $0.terminationStatus) }
            do { try p.run() } catch { p.terminationHandler = nil; c.resume(returning: -1) }
        }
        guard status == 0 else {
            let text = String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self)
            let command = arguments.first(where: { !$0.hasPrefix("-") && !$0.hasPrefix("/") }) ?? ""
            throw Failure(description: "git \(command) failed (\(status)): \(Self.scrub(text.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        return ""
    }
}
