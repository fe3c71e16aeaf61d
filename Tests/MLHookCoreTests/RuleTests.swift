import Foundation
import MLHookCore
import TestSupport
import Testing

@Suite struct RuleTests {
    /// The shape from the issue, as written, plus a source for slack.
    static let issueYAML = """
        sources:
          - { name: github, type: github, secrets: [ { env: GH } ] }
          - { name: slack, type: slack, secrets: [ { env: SL } ] }
        rules:
          - name: retrain-on-main
            when: { source: github, kind: push, branches: [main], paths: ["train/**", "!**/*.md"] }
            actions:
              - start_run: { experiment: "{{ repository.name }}", dir: train, script: train.py, arguments: ["--commit", "{{ after | short }}"], compute: cpu-cluster }
            callback:
              - url: { url: "https://ci.example.com/mlhook", secret: { env: CALLBACK_SECRET } }
          - name: chatops-scale
            when: { source: slack, command: "/aml scale {compute} {nodes:int}", users: [U2CERLKJA] }
            actions:
              - scale_compute: { name: "{{ args.compute }}", max_nodes: "{{ args.nodes }}" }
            callback:
              - slack: {}
        """

    static func rules() throws -> [Rule] { try MLHookConfig.parse(yaml: issueYAML, file: "rules.yaml").config.rules }

    func push(branch: String, files: [String], repo: String = "octo/ml-model", after: String = "9f1c2e3d4b5a69788766554433221100ffeeddcc") -> NormalizedEvent {
        var e = NormalizedEvent(source: "github", kind: .push, providerEvent: "push", deliveryID: "d", payload: .object([:]))
        e.repository = RepositoryInfo(fullName: repo)
        e.ref = "refs/heads/\(branch)"
        e.branch = branch
        e.after = after
        e.changedFiles = ChangedFiles(modified: files)
        return e
    }

    func slack(_ text: String, user: String = "U2CERLKJA") -> NormalizedEvent {
        var e = NormalizedEvent(source: "slack", kind: .command, providerEvent: "/aml", deliveryID: "d", payload: .object([:]))
        e.command = CommandInfo(name: "/aml", text: text, userID: user, responseURL: "https://hooks.slack.com/x")
        e.actor = user
        return e
    }

    @Test func theIssueShapeParsesAsWritten() throws {
        let rules = try Self.rules()
        #expect(rules.map(\.name) == ["retrain-on-main", "chatops-scale"])
        #expect(rules[0].callbacks == [.url(url: "https://ci.example.com/mlhook", secret: .env("CALLBACK_SECRET"))])
        #expect(rules[1].callbacks == [.slack])
        #expect(rules[1].when[0].command?.parameterNames == ["compute", "nodes"])
    }

    @Test func aMatchingPushPlansARenderedStartRun() throws {
        let plan = Planner.plan(push(branch: "main", files: ["train/train.py", "README.md"]), rules: try Self.rules())
        #expect(plan.actions == [PlannedAction(rule: "retrain-on-main", index: 0, type: .startRun, parameters: [
            "experiment": .string("ml-model"), "dir": .string("train"), "script": .string("train.py"),
            "arguments": .list(["--commit", "9f1c2e3"]), "compute": .string("cpu-cluster")])])
        #expect(plan.explanation.contains("✓ retrain-on-main: start_run {"))
        #expect(plan.explanation.contains("✗ chatops-scale: source: \"github\" is not \"slack\""))
    }

    @Test func explanationsNameTheFirstFailingConditionWithTheActualValue() throws {
        let rules = try Self.rules()
        let dev = Planner.plan(push(branch: "dev", files: ["train/a.py"]), rules: rules)
        #expect(dev.actions.isEmpty)
        #expect(dev.explanation.contains("✗ retrain-on-main: branch: \"dev\" is not in [main]"))
        let docs = Planner.plan(push(branch: "main", files: ["train/README.md", "docs/x.md"]), rules: rules)
        #expect(docs.explanation.contains("paths: no changed file (\"train/README.md\", \"docs/x.md\") matches [train/**, !**/*.md]"))
        let outside = Planner.plan(push(branch: "main", files: ["src/app.py"]), rules: rules)
        #expect(outside.actions.isEmpty)
    }

    @Test func chatOpsCommandsBindTypedArgumentsAndCheckUsers() throws {
        let rules = try Self.rules()
        let ok = Planner.plan(slack("scale gpu 4"), rules: rules)
        #expect(ok.actions == [PlannedAction(rule: "chatops-scale", index: 0, type: .scaleCompute,
                                             parameters: ["name": .string("gpu"), "max_nodes": .int(4)])])
        let notInt = Planner.plan(slack("scale gpu four"), rules: rules)
        #expect(notInt.explanation.contains("{nodes} must be an integer, got \"four\""))
        let stranger = Planner.plan(slack("scale gpu 4", user: "U999"), rules: rules)
        #expect(stranger.explanation.contains("users: \"U999\" is not allowed"))
        let extra = Planner.plan(slack("scale gpu 4 now"), rules: rules)
        #expect(extra.actions.isEmpty && extra.explanation.contains("unexpected \"now\""))
        // Rendered values are validated against what Azure ML accepts.
        let badName = Planner.plan(slack("scale g 4"), rules: rules)
        #expect(badName.explanation.contains("! chatops-scale: matched, but action 1 (scale_compute) name: \"g\" is not a valid compute name"))
        let tooMany = Planner.plan(slack("scale gpu 100000"), rules: rules)
        #expect(tooMany.explanation.contains("max_nodes: 100000 is out of range 0...1000"))
        // Shell metacharacters are just characters: they fail name validation and are never executed.
        let injection = Planner.plan(slack("scale gpu;rm 4"), rules: rules)
        #expect(injection.actions.isEmpty && injection.explanation.contains("is not a valid compute name"))
    }

    /// `{args:rest}` as an arguments item becomes the words of the rest of the line, split as a shell would
    /// (quotes kept together, spacing inside them kept); inside other text it stays one string.
    @Test func aRestArgumentIsSplitIntoWordsAsAShellWould() throws {
        let rules = try MLHookConfig.parse(yaml: """
            sources: [ { name: slack, type: slack, secrets: [ { env: S } ] } ]
            rules:
              - name: run
                when: { source: slack, command: "/aml run {experiment} {args:rest}" }
                actions:
                  - start_run: { experiment: "{{ args.experiment }}", repository: "https://example.com/r.git", ref: main, script: train.py,
                                 compute: cpu-cluster, arguments: ["--from-slack", "{{ args.args }}"], environment: { NOTE: "{{ args.args }}" } }
            """, file: "t.yaml").config.rules
        let plan = Planner.plan(slack(#"run demo --lr 0.1 --note "two  words" --tag 'a b' x\ y"#), rules: rules)
        let params = try #require(plan.actions.first?.parameters)
        #expect(params["arguments"] == .list(["--from-slack", "--lr", "0.1", "--note", "two  words", "--tag", "a b", "x y"]))
        #expect(params["environment"] == .map(["NOTE": #"--lr 0.1 --note "two  words" --tag 'a b' x\ y"#]))
        #expect(Planner.plan(slack("run demo"), rules: rules).actions.first?.parameters["arguments"] == .list(["--from-slack"]))
        let unclosed = Planner.plan(slack(#"run demo --note "open"#), rules: rules)
        #expect(unclosed.actions.isEmpty && unclosed.explanation.contains("unclosed double quote"), "\(unclosed.explanation)")
    }

    @Test func orBlocksPayloadPredicatesTagsAndActions() throws {
        let yaml = """
            sources: [ { name: gh, type: github, secrets: [ { env: X } ] } ]
            rules:
              - name: release-or-merged
                when:
                  - { kind: release, action: published, payload: [ { path: release.prerelease, equals: false } ] }
                  - { kind: pull_request, action: [merged], payload: { "pull_request.base.ref": main } }
                actions:
                  - register_model: { name: "model-{{ tag | default: 'dev' | slug }}", url: "https://models.example.com/{{ repository.full_name }}/model.pkl", tags: { commit: "{{ after | default: none }}" } }
              - name: tags-only
                when: { tags: ["v*"], payload: [ { path: sender.login, regex: "^octo" }, { path: deleted, exists: true } ] }
                actions: [ { delete_model: { id: "old:{{ payload.number | default: 1 }}" } } ]
            """
        let rules = try MLHookConfig.parse(yaml: yaml, file: "r.yaml").config.rules
        let release = EventNormalizer.normalize(.init(source: "gh", sourceType: .github, providerEvent: "release", deliveryID: "1",
                                                      contentType: "application/json", body: try Fixtures.webhook("github", "release.published.octokit.json")))
        let plan = Planner.plan(release, rules: rules)
        #expect(plan.actions.first?.parameters["name"] == .string("model-0-0-1"))
        #expect(plan.actions.first?.parameters["url"] == .string("https://models.example.com/Codertocat/Hello-World/model.pkl"))
        #expect(plan.explanation.contains("✗ tags-only: tag: \"0.0.1\" is not in [v*]"))

        let pr = EventNormalizer.normalize(.init(source: "gh", sourceType: .github, providerEvent: "pull_request", deliveryID: "2",
                                                 contentType: "application/json", body: try Fixtures.webhook("github", "pull_request.opened.octokit.json")))
        let prPlan = Planner.plan(pr, rules: rules)
        #expect(prPlan.explanation.contains("block 1: kind: \"pull_request\" is not in [release]; block 2: action: \"opened\" is not in [merged]"))
    }

    @Test func templateAndRuleErrorsAreConfigErrorsWithLines() {
        let yaml = """
            sources: [ { name: gh, type: github, secrets: [ { env: X } ] } ]
            rules:
              - name: broken
                when: { source: gitlab, kind: pushed, brnches: [main] }
                actions:
                  - start_run: { experiment: "{{ repo.name }}", script: ../x.py, compute: "{{ after | upper }}" }
                  - scale_compute: { name: "{{ args.c }}", max_nodes: "{{ args.n }}" }
                  - launch_rocket: {}
                callback:
                  - url: { url: "ftp://x" }
              - name: cron
                when: { schedule: "0 25 * * *", timezone: Mars/Olympus }
                actions: [ { cancel_run: { experiment: e, run_id: "{{ payload.id }}" } } ]
            """
        do {
            _ = try MLHookConfig.parse(yaml: yaml, file: "r.yaml")
            Issue.record("accepted")
        } catch {
            let t = error.description
            for expected in [
                "r.yaml:4: rules[0].when.source: names no configured source",
                "r.yaml:4: rules[0].when.kind: \"pushed\" is not a kind",
                "r.yaml:4: rules[0].when.brnches: unknown key",
                "r.yaml:6: rules[0].actions[0].start_run.experiment: unknown value \"repo.name\"",
                "r.yaml:6: rules[0].actions[0].start_run.script: \"../x.py\" is not a relative path",
                "r.yaml:6: rules[0].actions[0].start_run.compute: unknown filter \"upper\"",
                "r.yaml:7: rules[0].actions[1].scale_compute.name: uses {{ args.c }} but no command pattern of this rule defines {c}",
                "r.yaml:8: rules[0].actions[2]: unknown action \"launch_rocket\"",
                "r.yaml:10: rules[0].callback[0].url.url: \"ftp://x\" is not an http(s) URL",
                "rules[0].callback[0].url.secret: is required",
                "r.yaml:12: rules[1].when.timezone: \"Mars/Olympus\" is not a time zone",
            ] {
                #expect(t.contains(expected), "missing: \(expected)\n--- got:\n\(t)")
            }
        }
    }

    @Test func globs() {
        #expect(Glob("train/**").matches("train/a/b/c.py") && Glob("train/**").matches("train/x.py"))
        #expect(!Glob("train/*").matches("train/a/b.py") && Glob("train/*").matches("train/b.py"))
        #expect(Glob("**/*.md").matches("README.md") && Glob("**/*.md").matches("a/b/c.md") && !Glob("**/*.md").matches("a.py"))
        #expect(Glob("release/v?.*").matches("release/v1.2") && !Glob("release/v?.*").matches("release/v10.2"))
        #expect(Glob("feature/*").matches("feature/x") && !Glob("feature/*").matches("feature"))
    }
}
