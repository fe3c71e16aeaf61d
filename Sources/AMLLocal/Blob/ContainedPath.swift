import Foundation

/// Paths made from names that a client or a script chose (blob names, code and model URIs, job outputs) stay under
/// their root: each name is decoded once (by the router, or by `URL.path`), checked as one path component, and the
/// resolved path (every link followed, `realpath`) must lie under the root's resolved path.
///
/// Before this, a blob named `..%2F..%2Fmlhook.yaml` was decoded after the path was split, so its `..` passed the
/// check and a PUT overwrote the configuration; a code URI with `..%252F` was decoded twice and copied any folder
/// into a run; and a job's `outputs/model` made a link to a host folder that a scoring sandbox then bind-mounted.
enum ContainedPath {
    /// Whether a decoded name may be one path component: not empty, `.` or `..`, with no separator (`/`, `\`), no
    /// NUL, and no percent-encoded separator, dot or NUL left in it (a name encoded twice).
    static func isComponent(_ name: String) -> Bool {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\\"), !name.contains("\0") else { return false }
        let lower = name.lowercased()
        return !["%2f", "%5c", "%2e", "%00"].contains { lower.contains($0) }
    }

    /// `root` followed by `names`, each one checked by `isComponent`. - Returns: nil when a name is refused.
    static func join(_ root: URL, _ names: [String]) -> URL? {
        guard names.allSatisfy(isComponent) else { return nil }
        return names.reduce(root) { $0.appendingPathComponent($1) }
    }

    /// The path with every link resolved (`realpath`), or nil when it does not exist.
    static func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// `path` resolved, when it exists and lies under `root` (itself resolved). - Returns: nil when it leaves it.
    static func resolve(_ path: String, under root: String) -> String? {
        guard let target = resolved(path), let base = resolved(root) else { return nil }
        return target == base || target.hasPrefix(base.hasSuffix("/") ? base : base + "/") ? target : nil
    }

    /// The deepest existing folder on the way to `path` (resolved) lies under `root`: checked before writing a file
    /// whose folders may not exist yet.
    static func parentStaysUnder(_ path: URL, root: URL) -> Bool {
        var folder = path.deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: folder.path) && folder.path != "/" { folder = folder.deletingLastPathComponent() }
        return resolve(folder.path, under: root.path) != nil
    }
}
