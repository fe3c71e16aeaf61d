import Foundation

/// What each action's parameters must be after rendering, in the terms Azure ML accepts.
public enum ActionSchema {
    /// How a parameter is checked.
    public enum Kind: Sendable, Equatable {
        /// Experiment and model names: letters, digits, `-`, `_` (models also `.`), starting with a letter or
        /// digit, at most `max` characters.
        case name(max: Int, dots: Bool)
        /// AmlCompute names: 2 to 24 letters, digits and `-`, starting with a letter.
        case computeName
        /// A run id: `^[a-zA-Z0-9][\w-]{0,255}$` (the execution API's rule).
        case runID
        /// `name:version`.
        case modelID
        /// A relative path inside the source tree: no `..`, not absolute.
        case relativePath
        /// A v2 environment: `azureml:{name}@latest`, `azureml:{name}:{version}`, a registry id
        /// (`azureml://registries/{r}/environments/{name}/labels|versions/{x}`) or an ARM id.
        case environmentID
        /// An http(s) URL.
        case url
        /// Any text without control characters.
        case text
        /// A shell command line (v2 `command`): template values are shell-quoted when rendered.
        case command
        /// An integer in range.
        case int(ClosedRange<Int>)
        /// A list of texts.
        case list
        /// A map of texts.
        case map
    }

    /// A parameter's rule.
    public struct Parameter: Sendable {
        public let kind: Kind
        public let required: Bool
    }

    /// The parameters each action takes: its own, and `workspace` (one of `azureml.workspaces`; default the
    /// `azureml.cloud` one, or the embedded server's).
    public static func parameters(_ type: ActionType) -> [String: Parameter] {
        var all = own(type)
        all["workspace"] = Parameter(kind: .name(max: 64, dots: false), required: false)
        return all
    }

    private static func own(_ type: ActionType) -> [String: Parameter] {
        func p(_ k: Kind, _ r: Bool = false) -> Parameter { Parameter(kind: k, required: r) }
        switch type {
        case .startRun:
            return ["experiment": p(.name(max: 255, dots: false), true), "script": p(.relativePath, true),
                    "compute": p(.computeName, true), "dir": p(.relativePath), "arguments": p(.list),
                    "environment": p(.map), "max_run_seconds": p(.int(1...2_592_000)),
                    // For events that carry no commit (schedules, commands): where to fetch the code from.
                    "repository": p(.text), "ref": p(.text),
                    // For pull request comments: the pull request whose head commit to fetch, resolved through
                    // the GitHub API (`github_api`, https) with `token`.
                    "pull_request": p(.int(1...1_000_000_000)), "github_api": p(.url),
                    // With `token`, the user name sent with it over https (GitHub: x-access-token; GitLab: oauth2).
                    "git_user": p(.text)]
        case .submitJob:
            return ["command": p(.command, true), "environment": p(.environmentID, true), "compute": p(.computeName),
                    "experiment": p(.name(max: 255, dots: false)), "dir": p(.relativePath), "display_name": p(.text),
                    "inputs": p(.map), "environment_variables": p(.map), "tags": p(.map), "timeout_seconds": p(.int(1...2_592_000)),
                    // On Completed, register the job's output `model_path` (default model) as a version of this v2 model.
                    "register_model": p(.name(max: 255, dots: true)), "model_path": p(.relativePath),
                    "repository": p(.text), "ref": p(.text), "pull_request": p(.int(1...1_000_000_000)), "github_api": p(.url),
                    "git_user": p(.text)]
        case .registerModel:
            // from_run (+ experiment): a v1 run's output; from_job: a v2 job's output (azureml://jobs/…); url: either,
            // following azureml.api.
            return ["name": p(.name(max: 255, dots: true), true), "from_run": p(.runID), "from_job": p(.runID),
                    "experiment": p(.name(max: 255, dots: false)), "path": p(.relativePath), "url": p(.url), "description": p(.text),
                    "tags": p(.map)]
        case .deleteModel:
            return ["id": p(.modelID, true)]
        case .archiveModel:
            return ["id": p(.modelID, true)]
        case .invokeEndpoint:
            return ["endpoint": p(.name(max: 32, dots: false), true), "data": p(.text, true), "deployment": p(.name(max: 32, dots: false))]
        case .scaleCompute:
            return ["name": p(.computeName, true), "min_nodes": p(.int(0...1000)), "max_nodes": p(.int(0...1000), true),
                    "idle_seconds": p(.int(0...604_800))]
        case .cancelRun:
            return ["experiment": p(.name(max: 255, dots: false), true), "run_id": p(.runID, true)]
        case .score:
            return ["uri": p(.url, true), "data": p(.text, true)]
        }
    }

    /// Checks one rendered text value.
    /// - Returns: The typed value, or why it is not acceptable.
    public static func check(_ kind: Kind, _ value: String) -> Result<ParameterValue, TemplateError> {
        func bad(_ what: String) -> Result<ParameterValue, TemplateError> { .failure(TemplateError("\"\(value)\" is not \(what)")) }
        let ascii = value.unicodeScalars
        func all(_ allowed: (Unicode.Scalar) -> Bool) -> Bool { ascii.allSatisfy(allowed) }
        func alnum(_ c: Unicode.Scalar) -> Bool { c.isASCII && (CharacterSet.alphanumerics.contains(c)) }
        switch kind {
        case .name(let max, let dots):
            guard let first = ascii.first, alnum(first), value.count <= max,
                  all({ alnum($0) || $0 == "-" || $0 == "_" || (dots && $0 == ".") }) else {
                return bad("a valid name (letters, digits, -, _\(dots ? ", ." : ""); starting with a letter or digit; at most \(max) characters)")
            }
        case .computeName:
            guard let first = ascii.first, first.isASCII, CharacterSet.letters.contains(first), (2...24).contains(value.count),
                  all({ alnum($0) || $0 == "-" }) else {
                return bad("a valid compute name (2-24 letters, digits and -, starting with a letter)")
            }
        case .runID:
            guard let first = ascii.first, alnum(first), value.count <= 256, all({ alnum($0) || $0 == "-" || $0 == "_" }) else {
                return bad("a valid run id (letters, digits, - and _, at most 256 characters)")
            }
        case .modelID:
            let parts = value.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, Int(parts[1]).map({ $0 >= 1 }) == true,
                  case .success = check(.name(max: 255, dots: true), String(parts[0])) else {
                return bad("a model id (name:version, version 1 or more)")
            }
        case .relativePath:
            let segments = value.split(separator: "/", omittingEmptySubsequences: true)
            guard !value.isEmpty, !value.hasPrefix("/"), !segments.contains(".."), !value.contains("\0"), !value.contains("\\") else {
                return bad("a relative path inside the repository (no .., not absolute)")
            }
        case .environmentID:
            let forms = [#"^azureml:[A-Za-z0-9][\w.-]*(@latest|:[\w.-]+)$"#,
                         #"^azureml://registries/[\w.-]+/environments/[\w.-]+/(labels|versions)/[\w.-]+$"#,
                         #"^(azureml:)?/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/(workspaces|registries)/[^/]+/environments/[\w.-]+(/versions/[\w.-]+)?$"#]
            guard forms.contains(where: { value.range(of: $0, options: [.regularExpression, .caseInsensitive]) != nil }) else {
                return bad("an environment (azureml:NAME@latest, azureml:NAME:VERSION, azureml://registries/azureml/environments/NAME/labels/latest or an ARM id)")
            }
        case .url:
            guard let u = URL(string: value), ["http", "https"].contains(u.scheme?.lowercased() ?? ""), u.host != nil else {
                return bad("an http(s) URL")
            }
        case .text, .command:
            guard all({ $0.value >= 0x20 || $0 == "\n" || $0 == "\t" }) else { return bad("plain text (it has control characters)") }
        case .int(let range):
            guard let n = Int(value.trimmingCharacters(in: .whitespaces)) else { return bad("an integer") }
            guard range.contains(n) else { return .failure(TemplateError("\(n) is out of range \(range.lowerBound)...\(range.upperBound)")) }
            return .success(.int(n))
        case .list, .map:
            return .success(.string(value))
        }
        return .success(.string(value))
    }
}
