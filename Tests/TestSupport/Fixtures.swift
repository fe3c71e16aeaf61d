import Foundation

/// Real webhook payloads from ../shared/fixtures (see Fixtures/webhooks/SOURCES.md), bundled with the tests.
public enum Fixtures {
    /// The bytes of `webhooks/{provider}/{name}`.
    public static func webhook(_ provider: String, _ name: String) throws -> [UInt8] {
        guard let url = Bundle.module.url(forResource: "Fixtures/webhooks/\(provider)/\(name)", withExtension: nil) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "webhooks/\(provider)/\(name)"])
        }
        return [UInt8](try Data(contentsOf: url))
    }

    /// The file names in `webhooks/{provider}`.
    public static func names(_ provider: String) throws -> [String] {
        guard let dir = Bundle.module.url(forResource: "Fixtures/webhooks/\(provider)", withExtension: nil) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }
}

/// A directory under the system temp dir, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ prefix: String = "mlhook-test") throws {
        path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

extension Fixtures {
    /// GitHub's documented push payload (octokit), pointed at `commit` on main of the repository at `cloneURL`.
    public static func githubPush(commit: String, cloneURL: String, changed: [String] = ["train/train.py"]) throws -> [UInt8] {
        var payload = (try JSONSerialization.jsonObject(with: Data(try webhook("github", "push.new-branch-1-commit.octokit.json"))) as? [String: Any]) ?? [:]
        payload["ref"] = "refs/heads/main"
        payload["after"] = commit
        var repository = payload["repository"] as? [String: Any] ?? [:]
        repository["clone_url"] = cloneURL
        payload["repository"] = repository
        var commits = payload["commits"] as? [[String: Any]] ?? []
        if !commits.isEmpty { commits[0]["added"] = changed }
        payload["commits"] = commits
        return [UInt8](try JSONSerialization.data(withJSONObject: payload))
    }

    /// GitLab's push payload (go-gitlab), pointed at `commit` on main of the project at `cloneURL`.
    public static func gitlabPush(commit: String, cloneURL: String, changed: [String] = ["train/train.py"]) throws -> [UInt8] {
        var payload = (try JSONSerialization.jsonObject(with: Data(try webhook("gitlab", "push.go-gitlab.json"))) as? [String: Any]) ?? [:]
        payload["ref"] = "refs/heads/main"
        payload["after"] = commit
        payload["checkout_sha"] = commit
        var project = payload["project"] as? [String: Any] ?? [:]
        project["git_http_url"] = cloneURL
        payload["project"] = project
        var commits = payload["commits"] as? [[String: Any]] ?? []
        if !commits.isEmpty { commits[0]["added"] = changed }
        payload["commits"] = commits
        return [UInt8](try JSONSerialization.data(withJSONObject: payload))
    }
}
