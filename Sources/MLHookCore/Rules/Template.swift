import Foundation

/// A parameter template: text with `{{ path | filter … }}` expressions over the event, the payload and the
/// command's arguments. Rendering only looks values up and transforms them; nothing is evaluated or run.
public struct Template: Sendable, Equatable, CustomStringConvertible {
    /// A transformation applied to a looked-up value.
    public enum Filter: Sendable, Equatable {
        /// The first 7 characters (a short commit SHA).
        case short
        /// Lowercase.
        case lower
        /// Lowercase letters, digits and `-`, runs collapsed, at most 63 characters.
        case slug
        /// Used when the value is missing or empty.
        case `default`(String)
    }

    enum Part: Sendable, Equatable {
        case literal(String)
        case expression(path: String, filters: [Filter])
    }

    public let source: String
    let parts: [Part]

    /// Whether the template is plain text from the configuration, with no expression: nothing of an event's can
    /// change what it renders to.
    public var isLiteral: Bool { parts.allSatisfy { if case .literal = $0 { true } else { false } } }

    /// The roots a path may start with.
    public static let roots: Set<String> = ["source", "kind", "provider_event", "delivery_id", "action", "ref", "branch", "tag",
                                            "before", "after", "actor", "repository", "command", "args", "payload", "schedule"]

    /// Parses a template.
    /// - Throws: `TemplateError` for unclosed braces, unknown roots or filters.
    public init(_ source: String) throws(TemplateError) {
        self.source = source
        var parts: [Part] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw TemplateError("unclosed {{ in \"\(source)\"")
            }
            // Azure ML's own `${{inputs.x}}` / `${{outputs.x}}` in a command pass through as written.
            if open.lowerBound > rest.startIndex, rest[rest.index(before: open.lowerBound)] == "$" {
                parts.append(.literal(String(rest[..<close.upperBound])))
                rest = rest[close.upperBound...]
                continue
            }
            if open.lowerBound > rest.startIndex { parts.append(.literal(String(rest[..<open.lowerBound]))) }
            let inner = rest[open.upperBound..<close.lowerBound]
            parts.append(try Self.expression(inner, in: source))
            rest = rest[close.upperBound...]
        }
        if rest.contains("}}") { throw TemplateError("stray }} in \"\(source)\"") }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        self.parts = parts
    }

    private static func expression(_ inner: Substring, in source: String) throws(TemplateError) -> Part {
        let pieces = inner.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let path = pieces[0]
        guard !path.isEmpty else { throw TemplateError("empty {{ }} in \"\(source)\"") }
        let root = String(path.split(separator: ".").first ?? "")
        guard roots.contains(root) else {
            throw TemplateError("unknown value \"\(path)\" in \"\(source)\"; paths start with one of \(roots.sorted().joined(separator: ", "))")
        }
        guard path.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else {
            throw TemplateError("\"\(path)\" is not a dotted path (only values can be looked up)")
        }
        var filters: [Filter] = []
        for f in pieces.dropFirst() {
            switch f {
            case "short": filters.append(.short)
            case "lower": filters.append(.lower)
            case "slug": filters.append(.slug)
            case _ where f.hasPrefix("default"):
                var arg = f.dropFirst("default".count).trimmingCharacters(in: .whitespaces)
                if arg.hasPrefix(":") { arg = arg.dropFirst().trimmingCharacters(in: .whitespaces) }
                else if arg.hasPrefix("(") && arg.hasSuffix(")") { arg = String(arg.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces) }
                else { throw TemplateError("default needs a value, as in default: \"main\" (in \"\(source)\")") }
                if arg.count >= 2, let q = arg.first, (q == "\"" || q == "'"), arg.last == q { arg = String(arg.dropFirst().dropLast()) }
                filters.append(.default(arg))
            default:
                throw TemplateError("unknown filter \"\(f)\" in \"\(source)\"; filters are short, lower, slug, default")
            }
        }
        return .expression(path: path, filters: filters)
    }

    public var description: String { source }

    /// The `args.` names the template uses, to check them against the command pattern.
    /// The argument name when the template is exactly `{{ args.NAME }}` (no filter, no text around it).
    public var soleArgument: String? {
        guard parts.count == 1, case .expression(let path, let filters) = parts[0], filters.isEmpty, path.hasPrefix("args.") else { return nil }
        return String(path.dropFirst(5))
    }

    public var argumentNames: [String] {
        parts.compactMap {
            if case .expression(let path, _) = $0, path.hasPrefix("args.") { String(path.dropFirst(5)) } else { nil }
        }
    }

    /// A value as one shell word: as is when it holds only characters no shell treats specially, else in single
    /// quotes (a `'` inside closed, escaped and reopened).
    /// Quotes are found by Unicode scalar, as a shell reads bytes: a `'` followed by a combining mark is one
    /// Character to Swift, and a Character-wise replacement would leave it unescaped.
    ///
    /// The quoted word never holds `${{`, Azure ML's input syntax: a `$` followed by `{{` is closed and reopened
    /// between the two (`'a$''{{b}}'`, which the shell reads as `a${{b}}`), so a service that substitutes
    /// `${{inputs.…}}` in a command never finds one inside a value an event supplied (a branch named
    /// `x${{inputs.y}}` stays that text, instead of letting the substitution close the quotes around it).
    public static func shellQuoted(_ value: String) -> String {
        let plain = value.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._/:=@%+,-".unicodeScalars.contains($0)) }
        if !value.isEmpty && plain { return value }
        var out = String.UnicodeScalarView()
        out.append("'")
        let scalars = Array(value.unicodeScalars)
        for (i, scalar) in scalars.enumerated() {
            if scalar == "'" {
                out.append(contentsOf: "'\\''".unicodeScalars)
            } else if scalar == "$", i + 2 < scalars.count, scalars[i + 1] == "{", scalars[i + 2] == "{" {
                out.append(contentsOf: "$''".unicodeScalars)
            } else {
                out.append(scalar)
            }
        }
        out.append("'")
        return String(out)
    }

    /// Renders against a context.
    /// - Throws: `TemplateError` when a value is missing and no `default` filter supplies one.
    public func render(_ context: TemplateContext) throws(TemplateError) -> String {
        try render(context, quoting: { $0 })
    }

    /// Renders with each looked-up value passed through `quoting` (literals stay as written).
    /// - Throws: `TemplateError` when a value is missing and no `default` filter supplies one.
    public func render(_ context: TemplateContext, quoting: (String) -> String) throws(TemplateError) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let s): out += s
            case .expression(let path, let filters):
                var value = context.lookup(path)
                for filter in filters {
                    switch filter {
                    case .short: value = value.map { String($0.prefix(7)) }
                    case .lower: value = value?.lowercased()
                    case .slug: value = value.map(Self.slug)
                    case .default(let d): if value == nil || value!.isEmpty { value = d }
                    }
                }
                guard let value else { throw TemplateError("{{ \(path) }} has no value for this event") }
                out += quoting(value)
            }
        }
        return out
    }

    static func slug(_ s: String) -> String {
        var out = ""
        var dash = false
        for c in s.lowercased() {
            if c.isASCII && (c.isLetter || c.isNumber) {
                out.append(c)
                dash = false
            } else if !dash && !out.isEmpty {
                out.append("-")
                dash = true
            }
        }
        while out.hasSuffix("-") { out.removeLast() }
        return String(out.prefix(63))
    }
}

/// A template that cannot be parsed or rendered.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The values templates can read.
public struct TemplateContext: Sendable {
    public var event: NormalizedEvent
    /// Command pattern arguments.
    public var args: [String: String]
    /// Schedule values (`schedule.rule`, `schedule.tick`).
    public var schedule: [String: String]
    /// `{name:rest}` arguments: a list item that is only one of them is split into words.
    public var splitArguments: Set<String> = []

    public init(event: NormalizedEvent, args: [String: String] = [:], schedule: [String: String] = [:]) {
        self.event = event
        self.args = args
        self.schedule = schedule
    }

    /// The value at a dotted path, as text; nil when absent.
    public func lookup(_ path: String) -> String? {
        let segments = path.split(separator: ".", maxSplits: 1).map(String.init)
        let root = segments[0], rest = segments.count > 1 ? segments[1] : nil
        let e = event
        switch (root, rest) {
        case ("source", nil): return e.source
        case ("kind", nil): return e.kind.rawValue
        case ("provider_event", nil): return e.providerEvent
        case ("delivery_id", nil): return e.deliveryID
        case ("action", nil): return e.action
        case ("ref", nil): return e.ref
        case ("branch", nil): return e.branch
        case ("tag", nil): return e.tag
        case ("before", nil): return e.before
        case ("after", nil): return e.after
        case ("actor", nil): return e.actor
        case ("repository", "full_name"): return e.repository?.fullName
        case ("repository", "name"): return e.repository?.name
        case ("repository", "owner"): return e.repository?.owner
        case ("repository", "clone_url"): return e.repository?.cloneURL
        case ("repository", "default_branch"): return e.repository?.defaultBranch
        case ("command", "name"): return e.command?.name
        case ("command", "text"): return e.command?.text
        case ("command", "user_id"): return e.command?.userID
        case ("args", let name?): return args[name]
        case ("schedule", let name?): return schedule[name]
        case ("payload", let p?): return e.payload.value(at: p).flatMap { $0 == .null ? nil : $0.text }
        default: return nil
        }
    }
}
