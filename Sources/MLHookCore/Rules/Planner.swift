import Foundation

/// How one rule fared against one event.
public struct RuleEvaluation: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        /// Matched; these actions are planned.
        case matched([PlannedAction])
        /// Did not match; the first failing condition of each block, with the actual value.
        case notMatched(String)
        /// Matched, but an action's parameters did not render to something Azure ML accepts.
        case invalid(String)
    }

    public var rule: String
    public var outcome: Outcome

    /// One line: `✓ rule: actions`, `✗ rule: why not`, `! rule: what is invalid`.
    public var line: String {
        switch outcome {
        case .matched(let actions): "✓ \(rule): " + actions.map(\.summary).joined(separator: "; ")
        case .notMatched(let why): "✗ \(rule): \(why)"
        case .invalid(let why): "! \(rule): matched, but \(why)"
        }
    }
}

/// The planner's answer for one event.
public struct Plan: Sendable, Equatable {
    public var evaluations: [RuleEvaluation]

    /// Every planned action, in rule order.
    public var actions: [PlannedAction] {
        evaluations.flatMap { evaluation -> [PlannedAction] in
            if case .matched(let a) = evaluation.outcome { return a }
            return []
        }
    }

    /// One line per rule.
    public var explanation: String {
        evaluations.isEmpty ? "no rules are configured" : evaluations.map(\.line).joined(separator: "\n")
    }
}

/// Turns an event into planned actions. Pure: no I/O, no clock.
public enum Planner {
    /// Evaluates every rule.
    public static func plan(_ event: NormalizedEvent, rules: [Rule]) -> Plan {
        Plan(evaluations: rules.map { evaluate($0, event) })
    }

    static func evaluate(_ rule: Rule, _ event: NormalizedEvent) -> RuleEvaluation {
        var failures: [String] = []
        var args: [String: String]?
        var rest: Set<String> = []
        for block in rule.when {
            switch match(block, rule: rule.name, event) {
            case .success(let a):
                args = a
                rest = Set(block.command?.restParameter.map { [$0] } ?? [])
            case .failure(let why): failures.append(why.description)
            }
            if args != nil { break }
        }
        guard let args else {
            let why = failures.count == 1 ? failures[0]
                : failures.enumerated().map { "block \($0.offset + 1): \($0.element)" }.joined(separator: "; ")
            return RuleEvaluation(rule: rule.name, outcome: .notMatched(why))
        }
        var schedule: [String: String] = [:]
        if event.kind == .schedule {
            schedule["rule"] = event.payload["rule"]?.string
            schedule["tick"] = event.payload["tick"]?.string
        }
        var context = TemplateContext(event: event, args: args, schedule: schedule)
        context.splitArguments = rest
        var planned: [PlannedAction] = []
        for (i, spec) in rule.actions.enumerated() {
            switch render(spec, context) {
            case .success(let params):
                planned.append(PlannedAction(rule: rule.name, index: i, type: spec.type, parameters: params))
            case .failure(let e):
                return RuleEvaluation(rule: rule.name, outcome: .invalid("action \(i + 1) (\(spec.type.rawValue)) \(e.description)"))
            }
        }
        return RuleEvaluation(rule: rule.name, outcome: .matched(planned))
    }

    /// Renders and validates an action's parameters.
    public static func render(_ spec: ActionSpec, _ context: TemplateContext) -> Result<[String: ParameterValue], TemplateError> {
        let schema = ActionSchema.parameters(spec.type)
        var out: [String: ParameterValue] = [:]
        for (key, template) in spec.parameters.sorted(by: { $0.key < $1.key }) {
            guard let kind = schema[key]?.kind else { continue }
            do throws(TemplateError) {
                switch template {
                case .single(let t):
                    // A command line runs in a shell: what the event supplies goes in quoted, never as shell syntax.
                    let text = kind == .command ? try t.render(context, quoting: Template.shellQuoted) : try t.render(context)
                    switch ActionSchema.check(kind, text) {
                    case .success(let v): out[key] = v
                    case .failure(let e): return .failure(TemplateError("\(key): \(e.description)"))
                    }
                case .list(let ts):
                    var values: [String] = []
                    for t in ts {
                        // A list item that is only a {rest} argument becomes its words, split as a shell would.
                        if let name = t.soleArgument, context.splitArguments.contains(name) {
                            switch ShellWords.split(context.args[name] ?? "") {
                            case .success(let words): values += words
                            case .failure(let e): return .failure(TemplateError("\(key): {{ args.\(name) }}: \(e.description)"))
                            }
                        } else {
                            values.append(try t.render(context))
                        }
                    }
                    if let bad = values.first(where: { $0.contains("\0") }) {
                        return .failure(TemplateError("\(key): \"\(bad)\" contains a NUL byte"))
                    }
                    out[key] = .list(values)
                case .map(let d):
                    var m: [String: String] = [:]
                    for (k, t) in d { m[k] = try t.render(context) }
                    out[key] = .map(m)
                }
            } catch {
                return .failure(TemplateError("\(key): \(error.description)"))
            }
        }
        if spec.type == .scaleCompute, let lo = out["min_nodes"]?.int, let hi = out["max_nodes"]?.int, lo > hi {
            return .failure(TemplateError("min_nodes \(lo) is greater than max_nodes \(hi)"))
        }
        return .success(out)
    }

    /// Why a block does not match, or the command arguments when it does.
    static func match(_ w: WhenBlock, rule: String, _ e: NormalizedEvent) -> Result<[String: String], PatternError> {
        func fail(_ s: String) -> Result<[String: String], PatternError> { .failure(PatternError(s)) }
        func quoted(_ s: String?) -> String { s.map { "\"\($0)\"" } ?? "none" }
        func list(_ g: [some CustomStringConvertible]) -> String { "[" + g.map(\.description).joined(separator: ", ") + "]" }

        if let schedule = w.schedule {
            guard e.kind == .schedule else { return fail("schedule: this is a \(e.kind.rawValue) event, not a tick of \(schedule)") }
            guard e.payload["rule"]?.string == rule else { return fail("schedule: a tick of rule \(quoted(e.payload["rule"]?.string)), not this one") }
        } else if e.kind == .schedule {
            return fail("kind: \"schedule\" ticks only match rules with a schedule")
        }
        if let s = w.source, s != e.source { return fail("source: \(quoted(e.source)) is not \(quoted(s))") }
        if let kinds = w.kinds, !kinds.contains(e.kind) { return fail("kind: \(quoted(e.kind.rawValue)) is not in \(list(kinds.map(\.rawValue)))") }
        if let actions = w.actions, !actions.contains(e.action ?? "") { return fail("action: \(quoted(e.action)) is not in \(list(actions))") }
        if let repos = w.repositories, !repos.contains(where: { $0.matches(e.repository?.fullName ?? "") }) {
            return fail("repository: \(quoted(e.repository?.fullName)) is not in \(list(repos))")
        }
        if let branches = w.branches, !branches.contains(where: { $0.matches(e.branch ?? "") }) || e.branch == nil {
            return fail("branch: \(quoted(e.branch)) is not in \(list(branches))")
        }
        if let tags = w.tags, !tags.contains(where: { $0.matches(e.tag ?? "") }) || e.tag == nil {
            return fail("tag: \(quoted(e.tag)) is not in \(list(tags))")
        }
        if let paths = w.paths {
            let includes = paths.filter { !$0.hasPrefix("!") }.map(Glob.init)
            let excludes = paths.filter { $0.hasPrefix("!") }.map { Glob(String($0.dropFirst())) }
            let files = e.changedFiles.all
            if files.isEmpty { return fail("paths: the event lists no changed files") }
            let hit = files.first { f in (includes.isEmpty || includes.contains { $0.matches(f) }) && !excludes.contains { $0.matches(f) } }
            if hit == nil {
                let shown = files.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ") + (files.count > 5 ? ", …" : "")
                return fail("paths: no changed file (\(shown)) matches \(list(paths))")
            }
        }
        if let actors = w.actors, !actors.contains(e.actor ?? "") { return fail("actor: \(quoted(e.actor)) is not in \(list(actors))") }
        var args: [String: String] = [:]
        if let pattern = w.command {
            guard let c = e.command else { return fail("command: this \(e.kind.rawValue) event carries no command") }
            switch pattern.match(c.line) {
            case .success(let a): args = a
            case .failure(let why): return fail("command: \(quoted(c.line)) does not match \(quoted(pattern.text)): \(why)")
            }
        }
        if let users = w.users {
            let user = e.command?.userID ?? e.actor
            guard let user, users.contains(user) else { return fail("users: \(quoted(user)) is not allowed (allowed: \(list(users)))") }
        }
        for p in w.payload {
            let v = e.payload.value(at: p.path)
            switch p.test {
            case .equals(let want):
                guard let v, loosely(v, want) else { return fail("payload.\(p.path): \(v.map { quoted($0.text) } ?? "missing") is not \(quoted(want.text))") }
            case .oneOf(let wants):
                guard let v, wants.contains(where: { loosely(v, $0) }) else {
                    return fail("payload.\(p.path): \(v.map { quoted($0.text) } ?? "missing") is not in \(list(wants.map(\.text)))")
                }
            case .regex(let r):
                let text = v?.text ?? ""
                guard v != nil, let re = try? NSRegularExpression(pattern: r),
                      re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil else {
                    return fail("payload.\(p.path): \(v.map { quoted($0.text) } ?? "missing") does not match /\(r)/")
                }
            case .exists(let should):
                let present = v != nil && v != .null
                if present != should { return fail("payload.\(p.path): \(present ? "exists" : "is missing") (expected \(should ? "present" : "absent"))") }
            }
        }
        return .success(args)
    }

    /// Equality that lets a YAML `4` match a JSON `"4"` and vice versa (configs are typed loosely).
    static func loosely(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if a == b { return true }
        switch (a, b) {
        case (.string, .number), (.number, .string), (.string, .bool), (.bool, .string): return a.text == b.text
        default: return false
        }
    }
}
