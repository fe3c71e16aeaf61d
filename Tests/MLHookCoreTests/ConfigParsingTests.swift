import MLHookCore
import Testing

@Suite struct ConfigParsingTests {
    @Test func theMinimalConfigFromTheIssueWorksAsWritten() throws {
        let loaded = try MLHookConfig.parse(yaml: """
            server: { listen: "127.0.0.1:8080" }
            store: { path: ".mlhook/mlhook.db" }
            sources:
              - name: github
                type: github
                secrets: [ { env: GITHUB_WEBHOOK_SECRET } ]
            """, file: "mlhook.yaml")
        let c = loaded.config
        #expect(c.server.host == "127.0.0.1" && c.server.port == 8080)
        #expect(c.server.maxBodyBytes == 25 * 1024 * 1024)
        #expect(c.store.backend == .sqlite(.init(path: ".mlhook/mlhook.db", synchronous: .full)))
        #expect(c.sources == [{ var s = SourceConfig(name: "github", type: .github); s.secrets = [.env("GITHUB_WEBHOOK_SECRET")]; return s }()])
        #expect(loaded.warnings.isEmpty)
    }

    @Test func theEmbeddedDefaultsParse() throws {
        let c = try MLHookConfig.parse(yaml: MLHookConfig.embeddedDefaultsYAML, file: "<embedded defaults>").config
        #expect(c.sources.first?.secrets == [.file(".mlhook/secrets/github", create: true)])
    }

    @Test func errorsNameFileLineAndKey() {
        let yaml = """
            server:
              listen: "nowhere"
              max_body_bytes: lots
            store: { path: x.db, synchronous: sometimes }
            sources:
              - name: github
                type: gitbub
                secrets: [ { env: A } ]
              - name: Bad Name
                type: slack
                secret: [ { env: B } ]
            """
        do {
            _ = try MLHookConfig.parse(yaml: yaml, file: "conf.yaml")
            Issue.record("an invalid config was accepted")
        } catch {
            let text = error.description
            #expect(text.contains("conf.yaml:2: server.listen: expected host:port"))
            #expect(text.contains("conf.yaml:3: server.max_body_bytes: expected an integer"))
            #expect(text.contains("conf.yaml:4: store.synchronous: must be one of full, normal"))
            #expect(text.contains("conf.yaml:7: sources[0].type: must be one of github"))
            #expect(text.contains("conf.yaml:9: sources[1].name: must be 1-64 of a-z"))
            // A typo is an error, not a silently ignored key, and the secret-less source is refused too.
            #expect(text.contains("conf.yaml:11: sources[1].secret: unknown key"))
            #expect(text.contains("sources[1].secrets: a source needs at least one secret"))
        }
    }

    @Test func jobsCallbacksAndAdminSettings() throws {
        let c = try MLHookConfig.parse(yaml: """
            jobs: { workers: 8, retry_base_seconds: 1, retry_max_seconds: 60, lease_seconds: 120 }
            callbacks: { retry_schedule_seconds: [1, 10, 100] }
            admin: { token: { env: MLHOOK_ADMIN_TOKEN } }
            azureml: { mode: cloud, cloud: { data_plane_url: "https://ml.example.com" } }
            sources: [ { name: github, type: github, secrets: [ { env: A } ] } ]
            """, file: "f.yaml").config
        #expect(c.jobs.workers == 8 && c.jobs.retryBaseSeconds == 1 && c.jobs.retryMaxSeconds == 60 && c.jobs.leaseSeconds == 120)
        #expect(c.callbacks.retrySchedule == [1, 10, 100])
        #expect(c.admin.token == .env("MLHOOK_ADMIN_TOKEN"))
        #expect(c.azureml.cloud.dataPlaneURL == "https://ml.example.com")
        do {
            _ = try MLHookConfig.parse(yaml: """
                sources: [ { name: github, type: github, secrets: [ { env: A } ] } ]
                jobs: { workers: 0 }
                callbacks:
                  retry_schedule_seconds: [5, soon]
                """, file: "bad.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("bad.yaml:2: jobs.workers: must be between 1 and 256"))
            #expect(error.description.contains("bad.yaml:4: callbacks.retry_schedule_seconds[1]: expected seconds"))
        }
    }

    @Test func insecureSourcesNeedNoSecretAndLiteralSecretsWarn() throws {
        let loaded = try MLHookConfig.parse(yaml: """
            sources:
              - { name: open, type: generic, insecure: true, generic: { header: X-Sig } }
              - { name: lit, type: github, secrets: [ "plain-text-secret" ] }
            """, file: "f.yaml")
        #expect(loaded.config.sources[0].insecure)
        #expect(loaded.config.sources[1].secrets == [.literal("plain-text-secret")])
        #expect(loaded.warnings.count == 1 && loaded.warnings[0].line == 3)
        #expect(!loaded.warnings[0].description.contains("plain-text-secret"))
    }

    @Test func emptySecretsAndBadYAMLAreErrors() {
        #expect(throws: ConfigError.self) {
            try MLHookConfig.parse(yaml: "sources:\n  - { name: a, type: github, secrets: [ \"\" ] }\n", file: "f")
        }
        do {
            _ = try MLHookConfig.parse(yaml: "sources:\n  - name: a\n   type: [\n", file: "broken.yaml")
            Issue.record("broken YAML accepted")
        } catch {
            #expect(error.issues.first?.message.hasPrefix("invalid YAML") == true)
            #expect(error.issues.first?.line ?? 0 > 0)
        }
        #expect(throws: ConfigError.self) { try MLHookConfig.parse(yaml: "", file: "empty.yaml") }
        #expect(throws: ConfigError.self) { try MLHookConfig.parse(yaml: "server: {}\n", file: "nosources.yaml") }
    }

    @Test func duplicateSourceNamesAndGenericLayoutsAreChecked() {
        do {
            _ = try MLHookConfig.parse(yaml: """
                sources:
                  - { name: a, type: github, secrets: [ { env: A } ] }
                  - { name: a, type: gitea, secrets: [ { env: A } ] }
                  - { name: g, type: generic, secrets: [ { env: A } ], generic: { header: X-Sig, signed_string: "{nope}" } }
                  - { name: h, type: generic, secrets: [ { env: A } ] }
                """, file: "f.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.contains("f.yaml:3: sources[1].name: duplicate source name \"a\""))
            #expect(error.description.contains("f.yaml:4: sources[2].generic: signed_string placeholder {nope} is unknown"))
            #expect(error.description.contains("f.yaml:5: sources[3].generic: is required"))
        }
    }

    @Test func listenAcceptsIPv6AndRejectsJunk() {
        #expect(MLHookConfig.parseListen("[::1]:9000")! == ("::1", 9000))
        #expect(MLHookConfig.parseListen("0.0.0.0:0")! == ("0.0.0.0", 0))
        #expect(MLHookConfig.parseListen("host:99999") == nil)
        #expect(MLHookConfig.parseListen(":80") == nil)
    }
}

/// `start_run` took `display_name` and never used it (a v1 run definition has no display name): now it is refused,
/// with its file, line and key, instead of being silently dropped. `submit_job` keeps it (a command job shows it).
@Suite struct UnusedParameterTests {
    @Test func startRunRefusesTheDisplayNameItWouldDrop() throws {
        let yaml = """
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            rules:
              - name: r
                when: { kind: push }
                actions: [ { start_run: { experiment: e, script: train.py, compute: cpu-cluster, display_name: "x" } } ]
            """
        #expect(throws: ConfigError.self) { try MLHookConfig.parse(yaml: yaml, file: "r.yaml") }
        do { _ = try MLHookConfig.parse(yaml: yaml, file: "r.yaml") } catch {
            #expect(error.description.contains("r.yaml:5: rules[0].actions[0].start_run.display_name: unknown key"), "\(error.description)")
        }
        let v2 = yaml.replacingOccurrences(of: "start_run: { experiment: e, script: train.py, compute: cpu-cluster,",
                                           with: "submit_job: { command: \"python train.py\", environment: \"azureml:AzureML-sklearn-1.5@latest\",")
        #expect(throws: Never.self) { try MLHookConfig.parse(yaml: v2, file: "r.yaml") }
    }
}
