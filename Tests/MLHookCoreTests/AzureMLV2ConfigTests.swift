import MLHookCore
import Testing

/// The v2 configuration: `azureml.api`, `azureml.workspaces`, the v2 actions' parameters, and command templates
/// that quote what the event supplies.
@Suite struct AzureMLV2ConfigTests {
    static let source = "sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]\n"

    @Test func workspacesAreNamedBlocksAndActionsMustNameOneThatExists() throws {
        let c = try MLHookConfig.parse(yaml: Self.source + """
            azureml:
              api: v2
              workspaces:
                prod: { tenant_id: t, client_id: c, client_secret: { env: PROD }, subscription_id: s, resource_group: g, workspace: w, api: v1 }
            rules:
              - name: r
                when: { kind: push }
                actions:
                  - submit_job: { command: "python t.py", environment: "azureml:AzureML-sklearn-1.5@latest", workspace: prod }
                  - delete_model: { id: "m:1" }
            """, file: "c.yaml").config
        #expect(c.azureml.api == .v2)
        #expect(c.azureml.workspaces["prod"]?.workspace == "w" && c.azureml.workspaces["prod"]?.api == .v1)
        #expect(c.azureml.api(workspace: "prod") == .v1 && c.azureml.api(workspace: nil) == .v2)

        let bad = """
            azureml:
              workspaces:
                prod: { tenant_id: t, subscription_id: s, resource_group: g, workspace: w, api: v3 }
            rules:
              - name: r
                when: { kind: push }
                actions:
                  - archive_model: { id: "m:1", workspace: staging }
                  - submit_job: { command: "python t.py", environment: "sklearn" }
                  - register_model: { name: m, from_job: j, url: "https://x/m" }
            """
        #expect {
            _ = try MLHookConfig.parse(yaml: Self.source + bad, file: "c.yaml")
        } throws: { error in
            let text = "\(error)"
            return text.contains("azureml.workspaces.prod.client_id: is required")
                && text.contains("azureml.workspaces.prod.client_secret: is required")
                && text.contains("azureml.workspaces.prod.api: must be one of v1, v2")
                && text.contains("rules[0].actions[0].archive_model.workspace: names no workspace of azureml.workspaces; they are prod")
                && text.contains("submit_job.environment: \"sklearn\" is not an environment")
                && text.contains("needs one of from_run (a v1 run, with experiment), from_job (a v2 job) or url")
        }
    }

    @Test func aCommandQuotesWhatTheEventSuppliesAndPassesAzureMLInputsThrough() throws {
        let c = try MLHookConfig.parse(yaml: Self.source + """
            rules:
              - name: r
                when: { kind: push }
                actions:
                  - submit_job: { command: "python train.py --branch {{ branch }} --lr ${{inputs.lr}} --sha {{ after | short }}", environment: "azureml:e@latest", inputs: { lr: "0.1" } }
            """, file: "c.yaml").config
        let spec = try #require(c.rules.first?.actions.first)
        var event = NormalizedEvent(source: "github", kind: .push, providerEvent: "push", deliveryID: "d", payload: [:])
        event.branch = "x;touch /tmp/p $(id)"
        event.after = "0123456789abcdef0123456789abcdef01234567"
        let hostile = TemplateContext(event: event)
        let rendered = try Planner.render(spec, hostile).get()
        #expect(rendered["command"] == .string("python train.py --branch 'x;touch /tmp/p $(id)' --lr ${{inputs.lr}} --sha 0123456"))
        #expect(Template.shellQuoted("it's") == #"'it'\''s'"#)
        #expect(Template.shellQuoted("main") == "main" && Template.shellQuoted("") == "''")
        // A quote followed by a combining mark is one Character to Swift but still a quote to the shell (found by
        // scripts/fuzz.sh, harness command): it is escaped all the same.
        let combining = "'\u{301}; id"
        #expect(Template.shellQuoted(combining).unicodeScalars.elementsEqual("''\\''\u{301}; id'".unicodeScalars))
    }
}
