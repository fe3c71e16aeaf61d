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
}
