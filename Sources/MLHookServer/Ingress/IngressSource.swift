import Foundation
import HTTPTypes
import MLHookCore
import Signing

/// Everything ingress needs to accept deliveries for one configured source: its verifier, where the sender
/// puts the event name and delivery id, which headers are worth keeping, and which body format it sends.
public struct IngressSource: Sendable {
    /// How the body must be encoded.
    public enum BodyFormat: Sendable, Equatable {
        /// A JSON object; `application/json`.
        case json
        /// JSON, or a form with the JSON in its `payload` field (GitHub's form hooks).
        case jsonOrPayloadForm
        /// A Slack slash command form, or Slack Events API JSON.
        case slack
    }

    public let name: String
    public let type: SourceType
    /// nil only for `insecure: true` sources.
    public let verifier: (any WebhookVerifier)?
    public let format: BodyFormat
    /// Headers naming the event, first present wins.
    let eventHeaders: [HTTPField.Name]
    /// Headers carrying the delivery id, first present wins.
    let deliveryHeaders: [HTTPField.Name]
    /// Headers stored with the event. Never signature or token headers.
    let keptHeaders: [HTTPField.Name]

    /// Builds a source from its configuration and resolved secrets.
    /// - Throws: `ConfigError` when a secret cannot key the scheme (empty, or not base64 for Standard Webhooks).
    public init(config: SourceConfig, secrets: [WebhookSecret]) throws(ConfigError) {
        self.name = config.name
        self.type = config.type
        let tolerance = TimeInterval(config.toleranceSeconds)
        func names(_ list: [String]) -> [HTTPField.Name] { list.compactMap { HTTPField.Name($0) } }
        let common = ["User-Agent"]
        var genericScheme: GenericHMACScheme?
        if config.type == .generic {
            guard let g = config.generic else { throw ConfigError.key("sources[\(config.name)].generic", "is required for type generic") }
            do { genericScheme = try g.scheme(tolerance: config.toleranceSeconds) } catch {
                throw ConfigError.key("sources[\(config.name)].generic", error.description)
            }
        }
        do throws(SigningError) {
            switch config.type {
            case .github:
                verifier = config.insecure && secrets.isEmpty ? nil : try HexSignatureVerifier.github(secrets: secrets, allowSHA1: config.allowSHA1)
                format = .jsonOrPayloadForm
                eventHeaders = names(["X-GitHub-Event"])
                deliveryHeaders = names(["X-GitHub-Delivery"])
                keptHeaders = names(["X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID",
                                     "X-GitHub-Hook-Installation-Target-Type", "X-GitHub-Hook-Installation-Target-ID"] + common)
            case .gitea:
                verifier = config.insecure && secrets.isEmpty ? nil : try HexSignatureVerifier.gitea(secrets: secrets)
                format = .json
                eventHeaders = names(["X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event"])
                deliveryHeaders = names(["X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery"])
                keptHeaders = names(["X-Gitea-Event", "X-Gitea-Event-Type", "X-Gitea-Delivery", "X-Forgejo-Event"] + common)
            case .gitlab:
                verifier = config.insecure && secrets.isEmpty ? nil : try GitLabVerifier(secrets: secrets, tolerance: tolerance)
                format = .json
                eventHeaders = names(["X-Gitlab-Event"])
                deliveryHeaders = names(["Idempotency-Key", "webhook-id", "X-Gitlab-Event-UUID"])
                keptHeaders = names(["X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "X-Gitlab-Instance",
                                     "Idempotency-Key", "webhook-id", "webhook-timestamp"] + common)
            case .bitbucket:
                verifier = config.insecure && secrets.isEmpty ? nil : try HexSignatureVerifier.bitbucket(secrets: secrets)
                format = .json
                eventHeaders = names(["X-Event-Key"])
                deliveryHeaders = names(["X-Request-UUID", "X-Request-Id"])
                keptHeaders = names(["X-Event-Key", "X-Hook-UUID", "X-Request-UUID", "X-Request-Id", "X-Attempt-Number"] + common)
            case .slack:
                verifier = config.insecure && secrets.isEmpty ? nil : try SlackVerifier(secrets: secrets, tolerance: tolerance)
                format = .slack
                eventHeaders = []
                deliveryHeaders = []
                keptHeaders = names(["X-Slack-Request-Timestamp", "X-Slack-Retry-Num", "X-Slack-Retry-Reason"] + common)
            case .standard:
                verifier = config.insecure && secrets.isEmpty ? nil : try StandardWebhooksVerifier(secrets: secrets, tolerance: tolerance)
                format = .json
                eventHeaders = []
                deliveryHeaders = names(["webhook-id", "svix-id"])
                keptHeaders = names(["webhook-id", "webhook-timestamp", "svix-id", "svix-timestamp"] + common)
            case .generic:
                guard let g = config.generic, let scheme = genericScheme else { preconditionFailure("checked above") }
                verifier = config.insecure && secrets.isEmpty ? nil : try GenericHMACVerifier(scheme: scheme, secrets: secrets)
                format = .json
                eventHeaders = names([g.eventHeader].compactMap { $0 })
                deliveryHeaders = names([g.deliveryHeader].compactMap { $0 })
                keptHeaders = names([g.eventHeader, g.deliveryHeader, g.timestampHeader].compactMap { $0 } + common)
            }
        } catch {
            throw ConfigError.key("sources[\(config.name)].secrets", error.description)
        }
    }

    /// The first value of the first present header of `names`.
    func first(_ names: [HTTPField.Name], in headers: HTTPFields) -> String? {
        for n in names { if let v = headers[n], !v.isEmpty { return v } }
        return nil
    }

    /// The headers to store, by their canonical names.
    func kept(_ headers: HTTPFields) -> [String: String] {
        var out: [String: String] = [:]
        for n in keptHeaders { if let v = headers[n] { out[n.canonicalName] = v } }
        return out
    }
}

extension ConfigError {
    /// A single issue about a key, outside any file position.
    static func key(_ key: String, _ message: String) -> ConfigError {
        ConfigError([ConfigIssue(file: "<config>", line: 0, key: key, message: message)])
    }
}
