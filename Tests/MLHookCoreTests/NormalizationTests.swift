import MLHookCore
import TestSupport
import Testing

/// Table tests over the real payloads in ../shared/fixtures (bundled in TestSupport).
@Suite struct NormalizationTests {
    func normalize(_ type: SourceType, _ provider: String, _ file: String, event: String,
                   contentType: String = "application/json") throws -> NormalizedEvent {
        EventNormalizer.normalize(.init(source: provider, sourceType: type, providerEvent: event, deliveryID: "d-1",
                                        contentType: contentType, body: try Fixtures.webhook(provider, file)))
    }

    @Test func githubPush() throws {
        let e = try normalize(.github, "github", "push.new-branch-1-commit.octokit.json", event: "push")
        #expect(e.kind == .push && e.ref == "refs/heads/master" && e.branch == "master" && e.tag == nil)
        #expect(e.before == "0000000000000000000000000000000000000000" && e.after?.hasPrefix("6113728f27ae") == true)
        #expect(e.repository == RepositoryInfo(fullName: "Codertocat/Hello-World", cloneURL: "https://github.com/Codertocat/Hello-World.git", defaultBranch: "master"))
        #expect(e.repository?.name == "Hello-World" && e.repository?.owner == "Codertocat")
        #expect(e.changedFiles == ChangedFiles(added: ["README.md"]))
        #expect(e.actor == "Codertocat" && !e.deleted)
        #expect(e.payload.value(at: "repository.owner.login")?.string == "Codertocat", "the whole payload stays addressable")
    }

    @Test func githubTagsDeletionsCommentsPullRequestsReleases() throws {
        let tag = try normalize(.github, "github", "push.tag-created.go-scm.json", event: "push")
        #expect(tag.kind == .tag && tag.tag == "v0.0.1" && tag.branch == nil)
        let bdel = try normalize(.github, "github", "push.branch-deleted.go-scm.json", event: "push")
        #expect(bdel.kind == .branchDelete && bdel.branch == "feature-branch" && bdel.deleted)
        let tdel = try normalize(.github, "github", "push.tag-deleted.octokit.json", event: "push")
        #expect(tdel.kind == .other && tdel.tag == "simple-tag" && tdel.deleted, "a tag deletion is not a tag event")
        let comment = try normalize(.github, "github", "issue_comment.created.octokit.json", event: "issue_comment")
        #expect(comment.kind == .comment && comment.command == nil && comment.actor == "Codertocat")
        let pr = try normalize(.github, "github", "pull_request.opened.octokit.json", event: "pull_request")
        #expect(pr.kind == .pullRequest && pr.action == "opened" && pr.branch == "changes" && pr.after?.hasPrefix("ec26c3e57ca3") == true)
        let rel = try normalize(.github, "github", "release.published.octokit.json", event: "release")
        #expect(rel.kind == .release && rel.action == "published" && rel.tag == "0.0.1")
        let ping = try normalize(.github, "github", "ping.octokit.json", event: "ping")
        #expect(ping.kind == .other)
        let unknown = try normalize(.github, "github", "workflow_run.completed.octokit.json", event: "workflow_run")
        #expect(unknown.kind == .other && unknown.repository != nil)
    }

    @Test func gitlab() throws {
        let push = try normalize(.gitlab, "gitlab", "push.go-gitlab.json", event: "Push Hook")
        #expect(push.kind == .push && push.branch == "master" && push.after == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7")
        #expect(push.repository == RepositoryInfo(fullName: "mike/diaspora", cloneURL: "http://example.com/mike/diaspora.git", defaultBranch: "master"))
        #expect(push.actor == "jsmith")
        #expect(push.changedFiles.all == ["CHANGELOG", "app/controller/application.rb"], "files from every commit, once each")
        let tag = try normalize(.gitlab, "gitlab", "tag_push.go-gitlab.json", event: "Tag Push Hook")
        #expect(tag.kind == .tag && tag.tag == "v1.0.0")
        let del = try normalize(.gitlab, "gitlab", "push.branch-deleted.go-scm.json", event: "Push Hook")
        #expect(del.kind == .branchDelete && del.branch == "feature")
        let note = try normalize(.gitlab, "gitlab", "note_merge_request.go-gitlab.json", event: "Note Hook")
        #expect(note.kind == .comment && note.actor == "root")
        let mr = try normalize(.gitlab, "gitlab", "merge_request.go-gitlab.json", event: "Merge Request Hook")
        #expect(mr.kind == .pullRequest && mr.action == "open" && mr.branch == "ms-viewport")
        let rel = try normalize(.gitlab, "gitlab", "release.go-gitlab.json", event: "Release Hook")
        #expect(rel.kind == .release && rel.tag == "1.0.0")
        let pipeline = try normalize(.gitlab, "gitlab", "pipeline.go-gitlab.json", event: "Pipeline Hook")
        #expect(pipeline.kind == .other)
    }

    @Test func gitea() throws {
        let push = try normalize(.gitea, "gitea", "push.go-playground.json", event: "push")
        #expect(push.kind == .push && push.branch == "master" && push.after?.hasPrefix("67b56589a451") == true)
        #expect(push.repository?.cloneURL == "http://localhost:3000/example/example.git" && push.changedFiles.added == ["example"])
        let pr = try normalize(.gitea, "gitea", "pull_request.go-playground.json", event: "pull_request")
        #expect(pr.kind == .pullRequest && pr.action == "opened")
        let merged = try normalize(.gitea, "gitea", "pull_request.merged.go-scm.json", event: "pull_request")
        #expect(merged.kind == .pullRequest && merged.action == "merged")
        let rel = try normalize(.gitea, "gitea", "release.go-playground.json", event: "release")
        #expect(rel.kind == .release)
        let create = try normalize(.gitea, "gitea", "create.go-playground.json", event: "create")
        #expect(create.kind == .other)
    }

    @Test func bitbucketCloudAndDataCenter() throws {
        let push = try normalize(.bitbucket, "bitbucket", "repo-push.go-scm.json", event: "repo:push")
        #expect(push.kind == .push && push.branch == "master" && push.after?.hasPrefix("141977fedf5c") == true)
        #expect(push.repository?.fullName == "brydzewski/foo" && push.repository?.cloneURL == "https://bitbucket.org/brydzewski/foo.git")
        #expect(push.actor == "brydzewski")
        let merged = try normalize(.bitbucket, "bitbucket", "pullrequest-fulfilled-merged.go-scm.json", event: "pullrequest:fulfilled")
        #expect(merged.kind == .pullRequest && merged.action == "merged" && merged.branch == "develop")
        let dc = try normalize(.bitbucket, "bitbucket-server", "repo-refs-changed.go-playground.json", event: "repo:refs_changed")
        #expect(dc.kind == .branchDelete && dc.branch == "feature/wip" && dc.actor == "gopher")
        #expect(dc.repository?.cloneURL == "https://server.bitbucket.local/scm/~gopher/webhook-test.git")
        let pr = try normalize(.bitbucket, "bitbucket-server", "pr-merged.go-playground.json", event: "pr:merged")
        #expect(pr.kind == .pullRequest && pr.action == "merged" && pr.branch == "feature/wip" && pr.after?.hasPrefix("32a0b8a740c2") == true)
    }

    @Test func slackSlashCommand() throws {
        let e = try normalize(.slack, "slack", "slash-command.webhook-collect.form", event: "/webhook-collect",
                              contentType: "application/x-www-form-urlencoded")
        #expect(e.kind == .command && e.command?.name == "/webhook-collect" && e.command?.text == "")
        #expect(e.command?.userID == "U2CERLKJA" && e.actor == "U2CERLKJA")
        #expect(e.command?.responseURL == "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN")
    }

    @Test func commentCommandsAndUnknownBodies() {
        let body = Array(#"{"action":"created","comment":{"body":"/retrain fast\nplease"},"sender":{"login":"octo"},"repository":{"full_name":"o/r"}}"#.utf8)
        let e = EventNormalizer.normalize(.init(source: "gh", sourceType: .github, providerEvent: "issue_comment", deliveryID: "x", contentType: "application/json", body: body))
        #expect(e.kind == .comment && e.command == CommandInfo(name: "/retrain", text: "fast", userID: "octo"))
        let std = EventNormalizer.normalize(.init(source: "s", sourceType: .standard, providerEvent: "invoice.paid", deliveryID: "x", contentType: "application/json", body: Array(#"{"type":"invoice.paid","data":{"n":1.5,"ok":true}}"#.utf8)))
        #expect(std.kind == .other && std.payload.value(at: "data.n") == .number(1.5) && std.payload.value(at: "data.ok") == .bool(true))
    }
}
