import Foundation
import Yams

extension MLHookConfig {
    /// Parses `rules:`; every problem is recorded with its line and key.
    static func parseRules(_ node: Node, reader: YAMLReader, sourceNames: Set<String>) -> [Rule] {
        guard let items = reader.sequence(node, "rules") else { return [] }
        var rules: [Rule] = []
        for (i, item) in items.enumerated() {
            guard let m = reader.mapping(item, "rules[\(i)]") else { continue }
            if let rule = parseRule(m, reader: reader, sourceNames: sourceNames) {
                if rules.contains(where: { $0.name == rule.name }) {
                    reader.error(m.node("name"), m.keyPath("name"), "duplicate rule name \"\(rule.name)\"")
                }
                rules.append(rule)
            }
        }
        return rules
    }

    private static func parseRule(_ m: MappingReader, reader: YAMLReader, sourceNames: Set<String>) -> Rule? {
        defer { m.finish() }
        let name = m.requiredString("name") ?? ""
        if !name.isEmpty, case .failure = ActionSchema.check(.name(max: 64, dots: false), name) {
            reader.error(m.node("name"), m.keyPath("name"), "must be letters, digits, - and _ (at most 64), got \"\(name)\"")
        }
        var blocks: [WhenBlock] = []
        if let n = m.node("when") {
            if case .sequence(let seq) = n {
                for (j, b) in seq.enumerated() {
                    if let bm = reader.mapping(b, "\(m.keyPath("when"))[\(j)]") { blocks.append(parseWhen(bm, reader: reader, sourceNames: sourceNames)) }
                }
            } else if let bm = reader.mapping(n, m.keyPath("when")) {
                blocks.append(parseWhen(bm, reader: reader, sourceNames: sourceNames))
            }
        } else {
            reader.error(m.node, m.keyPath("when"), "is required: the conditions that trigger this rule")
        }
        var actions: [ActionSpec] = []
        var actionNodes: [Node] = []
        if let n = m.node("actions"), let items = reader.sequence(n, m.keyPath("actions")) {
            for (j, item) in items.enumerated() {
                if let a = parseAction(item, path: "\(m.keyPath("actions"))[\(j)]", reader: reader) {
                    actions.append(a)
                    actionNodes.append(item)
                    checkFetchable(a, blocks: blocks, node: item, path: "\(m.keyPath("actions"))[\(j)].\(a.type.rawValue)", reader: reader)
                }
            }
            if items.isEmpty { reader.error(n, m.keyPath("actions"), "lists no action") }
        } else if !m.has("actions") {
            reader.error(m.node, m.keyPath("actions"), "is required: \(ActionType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // Templates may only use arguments the rule's command patterns define.
        let defined = Set(blocks.flatMap { $0.command?.parameterNames ?? [] })
        for (j, action) in actions.enumerated() {
            for (key, p) in action.parameters {
                let templates: [Template]
                switch p {
                case .single(let t): templates = [t]
                case .list(let l): templates = l
                case .map(let d): templates = Array(d.values)
                }
                for arg in templates.flatMap(\.argumentNames) where !defined.contains(arg) {
                    // The line of this action, not of the list.
                    reader.error(j < actionNodes.count ? actionNodes[j] : m.node("actions"), "\(m.keyPath("actions"))[\(j)].\(action.type.rawValue).\(key)",
                                 "uses {{ args.\(arg) }} but no command pattern of this rule defines {\(arg)}")
                }
            }
        }
        var callbacks: [CallbackTarget] = []
        var callbackLines: [Int] = []
        if let n = m.node("callback"), let items = reader.sequence(n, m.keyPath("callback")) {
            for (j, item) in items.enumerated() {
                if let c = parseCallback(item, path: "\(m.keyPath("callback"))[\(j)]", reader: reader) {
                    callbacks.append(c)
                    callbackLines.append(item.mark?.line ?? 0)
                }
            }
        }
        let concurrency: Int? = m.has("concurrency") ? m.int("concurrency", default: 1, range: 1...1000) : nil
        let maxAttempts = m.int("max_attempts", default: 5, range: 1...100)
        let supersede = m.bool("supersede", default: false)
        var rule = Rule(name: name, when: blocks, actions: actions, callbacks: callbacks, concurrency: concurrency,
                    maxAttempts: maxAttempts, supersede: supersede, line: m.node.mark?.line ?? 0)
        rule.callbackLines = callbackLines
        return rule
    }

    /// A `start_run` for events that carry no commit (a command, a schedule, a comment, a release) must say what
    /// to fetch: `repository` with `ref`, or `pull_request`. Otherwise every such event would fail its job.
    private static func checkFetchable(_ action: ActionSpec, blocks: [WhenBlock], node: Node, path: String, reader: YAMLReader) {
        guard action.type.fetchesCode else { return }
        let p = action.parameters
        if p["pull_request"] != nil || (p["repository"] != nil && p["ref"] != nil) { return }
        let withCommit: Set<EventKind> = [.push, .tag, .pullRequest]
        let without = blocks.compactMap { b -> String? in
            if b.command != nil { return "a command" }
            if b.schedule != nil { return "a schedule" }
            if let kinds = b.kinds, !kinds.isEmpty, Set(kinds).isDisjoint(with: withCommit) {
                return kinds.map(\.rawValue).joined(separator: "/") + " events"
            }
            return nil
        }
        guard let first = without.first else { return }
        reader.error(node, path, "the rule runs on \(first), which carries no commit: set repository and ref, "
                     + "or pull_request (a pull request comment) for the code to fetch")
    }

    /// A string or a list of strings.
    private static func strings(_ m: MappingReader, _ key: String) -> [String]? {
        guard let n = m.node(key) else { return nil }
        if case .scalar(let s) = n { return [s.string] }
        guard let items = m.reader.sequence(n, m.keyPath(key)) else { return nil }
        return items.compactMap { m.reader.string($0, m.keyPath(key)) }
    }

    private static func parseWhen(_ m: MappingReader, reader: YAMLReader, sourceNames: Set<String>) -> WhenBlock {
        defer { m.finish() }
        var w = WhenBlock()
        if let s = m.string("source") {
            if !sourceNames.contains(s) {
                reader.error(m.node("source"), m.keyPath("source"), "names no configured source; sources are \(sourceNames.sorted().joined(separator: ", "))")
            }
            w.source = s
        }
        if let kinds = strings(m, "kind") {
            w.kinds = kinds.compactMap { k in
                guard let kind = EventKind(rawValue: k) else {
                    reader.error(m.node("kind"), m.keyPath("kind"), "\"\(k)\" is not a kind; kinds are \(EventKind.allCases.map(\.rawValue).joined(separator: ", "))")
                    return nil
                }
                return kind
            }
        }
        w.actions = strings(m, "action")
        w.repositories = strings(m, "repository")?.map(Glob.init)
        w.branches = strings(m, "branches")?.map(Glob.init)
        w.tags = strings(m, "tags")?.map(Glob.init)
        w.paths = strings(m, "paths")
        w.actors = strings(m, "actors")
        w.users = strings(m, "users")
        if let c = m.string("command") {
            do { w.command = try CommandPattern(c) } catch { reader.error(m.node("command"), m.keyPath("command"), error.description) }
        }
        if let n = m.node("payload") { w.payload = parsePredicates(n, path: m.keyPath("payload"), reader: reader) }
        if let expr = m.string("schedule") {
            let tzName = m.string("timezone") ?? "UTC"
            if let tz = TimeZone(identifier: tzName) {
                do { w.schedule = try CronSchedule(expr, timeZone: tz) } catch { reader.error(m.node("schedule"), m.keyPath("schedule"), error.description) }
            } else {
                reader.error(m.node("timezone"), m.keyPath("timezone"), "\"\(tzName)\" is not a time zone (use an IANA name such as Europe/Berlin)")
            }
        } else if m.has("timezone") {
            _ = m.node("timezone")
            reader.error(m.node("timezone"), m.keyPath("timezone"), "only makes sense with schedule")
        }
        return w
    }

    private static func parsePredicates(_ node: Node, path: String, reader: YAMLReader) -> [PayloadPredicate] {
        var out: [PayloadPredicate] = []
        if case .mapping(let map) = node {
            // Shorthand: { "pull_request.merged": true } means equals.
            for (k, v) in map {
                guard let key = k.string else { continue }
                out.append(PayloadPredicate(path: key, test: .equals(jsonValue(v))))
            }
            return out
        }
        guard let items = reader.sequence(node, path) else { return [] }
        for (i, item) in items.enumerated() {
            guard let m = reader.mapping(item, "\(path)[\(i)]") else { continue }
            defer { m.finish() }
            guard let p = m.requiredString("path") else { continue }
            if let n = m.node("equals") { out.append(PayloadPredicate(path: p, test: .equals(jsonValue(n)))) }
            else if let n = m.node("in"), case .sequence(let seq) = n { out.append(PayloadPredicate(path: p, test: .oneOf(seq.map(jsonValue)))) }
            else if let r = m.string("regex") {
                if (try? NSRegularExpression(pattern: r)) == nil {
                    reader.error(m.node("regex"), m.keyPath("regex"), "is not a valid regular expression")
                } else {
                    out.append(PayloadPredicate(path: p, test: .regex(r)))
                }
            } else if m.has("exists") { out.append(PayloadPredicate(path: p, test: .exists(m.bool("exists", default: true)))) }
            else { reader.error(item, "\(path)[\(i)]", "needs one of equals, in, regex, exists") }
        }
        return out
    }

    /// A YAML scalar or collection as JSON (numbers, booleans and null resolved as YAML does).
    static func jsonValue(_ n: Node) -> JSONValue {
        switch n {
        case .scalar(let s):
            if s.style == .plain {
                if n.null != nil { return .null }
                if let b = n.bool { return .bool(b) }
                if let i = n.int { return .number(Double(i)) }
                if let f = n.float { return .number(f) }
            }
            return .string(s.string)
        case .sequence(let seq): return .array(seq.map(jsonValue))
        case .mapping(let map):
            var d: [String: JSONValue] = [:]
            for (k, v) in map { d[k.string ?? ""] = jsonValue(v) }
            return .object(d)
        case .alias: return .null
        }
    }

    private static func parseAction(_ node: Node, path: String, reader: YAMLReader) -> ActionSpec? {
        guard case .mapping(let map) = node, map.count == 1, let (k, v) = map.first, let typeName = k.string else {
            reader.error(node, path, "an action is one key naming its type, such as start_run: { … }")
            return nil
        }
        guard let type = ActionType(rawValue: typeName) else {
            reader.error(k, path, "unknown action \"\(typeName)\"; actions are \(ActionType.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        let apath = "\(path).\(typeName)"
        guard let m = reader.mapping(v, apath) else { return nil }
        let schema = ActionSchema.parameters(type)
        var params: [String: ParameterTemplate] = [:]
        var secret: SecretReference?
        for (key, rule) in schema {
            guard let pn = m.node(key) else {
                if rule.required { reader.error(v, "\(apath).\(key)", "is required") }
                continue
            }
            func template(_ n: Node, _ p: String) -> Template? {
                guard case .scalar(let s) = n else { reader.error(n, p, "expected a value"); return nil }
                do {
                    let t = try Template(s.string)
                    // A literal is checked now, so a typo fails at start rather than at the first event.
                    if t.argumentNames.isEmpty, !s.string.contains("{{"), case .failure(let e) = ActionSchema.check(rule.kind, s.string),
                       rule.kind != .list, rule.kind != .map {
                        reader.error(n, p, e.description)
                    }
                    return t
                } catch { reader.error(n, p, error.description); return nil }
            }
            switch rule.kind {
            case .list:
                guard let items = reader.sequence(pn, "\(apath).\(key)") else { continue }
                params[key] = .list(items.enumerated().compactMap { template($1, "\(apath).\(key)[\($0)]") })
            case .map:
                guard case .mapping(let mm) = pn else { reader.error(pn, "\(apath).\(key)", "expected a mapping"); continue }
                var d: [String: Template] = [:]
                for (mk, mv) in mm { if let ks = mk.string, let t = template(mv, "\(apath).\(key).\(ks)") { d[ks] = t } }
                params[key] = .map(d)
            default:
                if let t = template(pn, "\(apath).\(key)") { params[key] = .single(t) }
            }
        }
        if type == .score {
            if let kn = m.node("key") { secret = parseSecretReference(kn, path: "\(apath).key", reader: reader) }
        }
        if type.fetchesCode {
            // The token git sends to fetch over https (a GitHub or GitLab access token).
            if let tn = m.node("token") { secret = parseSecretReference(tn, path: "\(apath).token", reader: reader) }
        }
        if type == .registerModel, [params["from_run"], params["from_job"], params["url"]].compactMap({ $0 }).count != 1 {
            reader.error(v, apath, "needs one of from_run (a v1 run, with experiment), from_job (a v2 job) or url")
        }
        m.finish()
        return ActionSpec(type: type, parameters: params, secret: secret, line: node.mark?.line ?? 0)
    }

    private static func parseCallback(_ node: Node, path: String, reader: YAMLReader) -> CallbackTarget? {
        guard case .mapping(let map) = node, map.count == 1, let (k, v) = map.first, let kind = k.string else {
            reader.error(node, path, "a callback is one key: url, slack or github_status")
            return nil
        }
        let cpath = "\(path).\(kind)"
        guard let m = reader.mapping(v, cpath) else { return nil }
        defer { m.finish() }
        switch kind {
        case "url":
            guard let url = m.requiredString("url") else { return nil }
            if case .failure(let e) = ActionSchema.check(.url, url) { reader.error(m.node("url"), m.keyPath("url"), e.description) }
            guard let sn = m.node("secret") else {
                reader.error(v, m.keyPath("secret"), "is required: callbacks are signed (Standard Webhooks)")
                return nil
            }
            guard let secret = parseSecretReference(sn, path: m.keyPath("secret"), reader: reader) else { return nil }
            return .url(url: url, secret: secret)
        case "slack":
            return .slack
        case "github_status":
            guard let tn = m.node("token"), let token = parseSecretReference(tn, path: m.keyPath("token"), reader: reader) else {
                reader.error(v, m.keyPath("token"), "is required ({ env: GITHUB_TOKEN } or { file: PATH })")
                return nil
            }
            let apiBase = m.string("api_base") ?? "https://api.github.com"
            // The token goes to this address: https only (plain http only to this machine, for tests).
            guard TokenDestination.allows(apiBase) else {
                reader.error(m.node("api_base") ?? v, m.keyPath("api_base"), "must be an https URL (the token is sent to it), got \"\(apiBase)\"")
                return nil
            }
            return .githubStatus(token: token, apiBase: apiBase.hasSuffix("/") ? String(apiBase.dropLast()) : apiBase,
                                 context: m.string("context") ?? "mlhook")
        default:
            reader.error(k, path, "unknown callback \"\(kind)\"; callbacks are url, slack, github_status")
            return nil
        }
    }
}
