import Foundation
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

    @Test func branchTagAndCommitNamesAreAccepted() throws {
        for ref in ["main", "release/1.2", "v1.0.0", "feature_x-y", String(repeating: "a", count: 40)] {
            #expect(throws: Never.self) { try GitSource.validate(url: "https://example.com/o/r.git", ref: ref, folder: "train") }
        }
    }

    /// A cached repository no job used within the retention is deleted; one in use stays.
    @Test func theCacheForgetsRepositoriesNoJobUses() async throws {
        let dir = try TemporaryDirectory("mlhook-git-prune")
        defer { dir.remove() }
        let sha = try ProviderEndToEndTests().makeRepo(dir.file("repo"))
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
