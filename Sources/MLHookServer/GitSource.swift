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

    /// The zip of `folder` (relative, "." for the root) at `commit` of `url`.
    public func zip(url: String, commit: String, folder: String) async throws -> [UInt8] {
        let cache = cacheDirectory + "/" + Digest.sha256Hex(Array(url.utf8)) + ".git"
        try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: cache) {
            try await git(["init", "--bare", "-q", cache])
        }
        // Fetch only if the commit is not cached yet (a retry or a second rule reuses it).
        if (try? await git(["-C", cache, "cat-file", "-e", commit + "^{commit}"])) == nil {
            try await git(["-C", cache, "fetch", "-q", "--no-tags", url, commit])
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-\(UUID().uuidString).zip").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tree = folder == "." || folder.isEmpty ? commit : "\(commit):\(folder)"
        try await git(["-C", cache, "archive", "--format=zip", "-o", out, tree])
        guard let data = FileManager.default.contents(atPath: out) else { throw Failure(description: "git archive wrote nothing") }
        guard data.count <= maxZipBytes else { throw Failure(description: "\(folder) at \(commit.prefix(12)) zips to more than \(maxZipBytes) bytes") }
        return [UInt8](data)
    }

    /// The trimmed standard output of a git command.
    func output(_ arguments: [String]) async throws -> String {
        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("mlhook-git-out-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        try await git(arguments, stdoutPath: outPath)
        return String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    func git(_ arguments: [String], stdoutPath: String? = nil) async throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["GIT_TERMINAL_PROMPT"] = "0"  // never wait for a password
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
            throw Failure(description: "git \(arguments.first(where: { !$0.hasPrefix("-") && !$0.hasPrefix("/") }) ?? "") failed (\(status)): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return ""
    }
}
