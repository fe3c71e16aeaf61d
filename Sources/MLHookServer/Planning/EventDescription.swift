import MLHookCore

/// Human-readable summaries of normalized events, for the CLI and logs.
public enum EventDescription {
    /// A few lines: kind, repository, ref, commits, actor, command, changed files.
    public static func summary(_ e: NormalizedEvent) -> String {
        var lines = ["event: \(e.kind.rawValue) (\(e.source) \(e.providerEvent))"]
        if let r = e.repository { lines.append("repository: \(r.fullName)" + (r.cloneURL.map { " \($0)" } ?? "")) }
        if let ref = e.ref { lines.append("ref: \(ref)" + (e.deleted ? " (deleted)" : "")) }
        if e.before != nil || e.after != nil { lines.append("commits: \(e.before ?? "-") → \(e.after ?? "-")") }
        if let a = e.action { lines.append("action: \(a)") }
        if let a = e.actor { lines.append("actor: \(a)") }
        if let c = e.command { lines.append("command: \(c.line)") }
        let files = e.changedFiles.all
        if !files.isEmpty { lines.append("changed files (\(files.count)): " + files.prefix(10).joined(separator: ", ") + (files.count > 10 ? ", …" : "")) }
        return lines.joined(separator: "\n")
    }
}
