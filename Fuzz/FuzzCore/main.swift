// libFuzzer harnesses for what parses input before or around authentication: every webhook verifier, the JSON
// validator and parser, the form parser, the event normalizer, the cron parser, the template renderer and the
// YAML config loader. One binary; MLHOOK_FUZZ_TARGET picks the harness (scripts/fuzz.sh sets it).
// Built only by scripts/fuzz.sh (MLHOOK_FUZZ=1 swift build --sanitize=fuzzer --sanitize=address).
import Foundation
import HTTPTypes
import MLHookCore
import Signing

private let target = ProcessInfo.processInfo.environment["MLHOOK_FUZZ_TARGET"] ?? "verifiers"
private let now = Date(timeIntervalSince1970: 1_700_000_000)
private let secrets = [WebhookSecret("It's a Secret to Everybody"), WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]

/// The input as request headers and a body: "Name: value" lines up to the first empty line, then the body.
/// The first byte picks whether the harness also signs the body correctly (odd), so the paths after a matching
/// MAC (timestamps, ids, rotation) are reached as well as the refusals.
private func request(_ bytes: [UInt8]) -> (headers: HTTPFields, body: [UInt8], sign: Bool) {
    guard let first = bytes.first else { return ([:], [], false) }
    let rest = Array(bytes.dropFirst())
    var headers = HTTPFields()
    var body = rest
    if let split = rest.firstRange(of: Array("\n\n".utf8)) {
        body = Array(rest[split.upperBound...])
        for line in String(decoding: rest[..<split.lowerBound], as: UTF8.self).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), let name = HTTPField.Name(String(line[..<colon])) else { continue }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers.append(HTTPField(name: name, value: value))
        }
    }
    return (headers, body, first & 1 == 1)
}

private func add(_ signed: [WebhookSigner.Header], to headers: inout HTTPFields) {
    for (name, value) in signed {
        if let n = HTTPField.Name(name) { headers[n] = value }
    }
}

private let generic = try! GenericHMACScheme(header: "X-Signature", algorithm: .sha256, encoding: .base64, prefix: "sha256=",
                                             timestampHeader: "X-Timestamp", signedString: "{timestamp}:{header:X-Id}:{body}")

private func verifiers(_ bytes: [UInt8]) {
    let (base, body, sign) = request(bytes)
    let all: [(any WebhookVerifier, (inout HTTPFields) -> Void)] = [
        (try! HexSignatureVerifier.github(secrets: secrets, allowSHA1: true), { h in add((try? WebhookSigner.github(secret: secrets[1], body: body)) ?? [], to: &h) }),
        (try! HexSignatureVerifier.gitea(secrets: secrets), { h in add((try? WebhookSigner.gitea(secret: secrets[0], body: body)) ?? [], to: &h) }),
        (try! HexSignatureVerifier.bitbucket(secrets: secrets), { h in add((try? WebhookSigner.bitbucket(secret: secrets[0], body: body)) ?? [], to: &h) }),
        (try! GitLabVerifier(secrets: secrets), { h in add(WebhookSigner.gitlab(token: secrets[0]), to: &h) }),
        (try! SlackVerifier(secrets: secrets), { h in
            let ts = h[HTTPField.Name("X-Slack-Request-Timestamp")!].flatMap { Int($0) } ?? Int(now.timeIntervalSince1970)
            add((try? WebhookSigner.slack(secret: secrets[0], body: body, timestamp: ts)) ?? [], to: &h)
        }),
        (try! StandardWebhooksVerifier(secrets: [secrets[1]]), { h in
            let id = h[HTTPField.Name("webhook-id")!] ?? "msg_fuzz"
            add((try? WebhookSigner.standard(secret: secrets[1], id: id, timestamp: Int(now.timeIntervalSince1970), body: body)) ?? [], to: &h)
        }),
        (try! GenericHMACVerifier(scheme: generic, secrets: secrets), { h in
            let ts = h[HTTPField.Name("X-Timestamp")!].flatMap { Int($0) } ?? Int(now.timeIntervalSince1970)
            let named = Dictionary(h.map { ($0.name.rawName, $0.value) }, uniquingKeysWith: { first, _ in first })
            add((try? WebhookSigner.generic(scheme: generic, secret: secrets[0], body: body, timestamp: ts, headers: named)) ?? [], to: &h)
        }),
    ]
    for (verifier, signer) in all {
        var headers = base
        if sign { signer(&headers) }
        _ = body.withUnsafeBytes { raw in try? verifier.verify(headers: headers, body: raw, now: now) }
    }
}

private func json(_ bytes: [UInt8]) {
    let valid = bytes.withUnsafeBytes { raw in (try? JSONValidator.validateObject(raw)) != nil }
    let parsed = JSONValue.parse(bytes)
    // The validator guards ingress and the parser reads what was stored: an object one accepts, the other reads.
    if valid, case .object = parsed {} else if valid { fatalError("validated but not parsed as an object") }
}

private func form(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    _ = try? FormURLEncoded.decode(text)
    for type in SourceType.allCases {
        _ = EventNormalizer.normalize(.init(source: "s", sourceType: type, providerEvent: type == .slack ? "/aml" : "push",
                                            deliveryID: "d", contentType: "application/x-www-form-urlencoded", body: bytes))
        _ = EventNormalizer.normalize(.init(source: "s", sourceType: type, providerEvent: "push",
                                            deliveryID: "d", contentType: "application/json", body: bytes))
    }
}

private func cron(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard let schedule = try? CronSchedule(text) else { return }
    if let next = schedule.next(after: now) {
        precondition(next > now, "next(after:) went back in time for \(text)")
        _ = schedule.previous(atOrBefore: next, window: 86_400 * 366)
    }
}

private let event = EventNormalizer.normalize(.init(
    source: "gh", sourceType: .github, providerEvent: "push", deliveryID: "d", contentType: "application/json",
    body: Array(#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567","repository":{"full_name":"o/r","clone_url":"https://example.com/o/r.git"},"head_commit":{"message":"x {{ y }}"}}"#.utf8)))

private func template(_ bytes: [UInt8]) {
    guard let t = try? Template(String(decoding: bytes, as: UTF8.self)) else { return }
    _ = try? t.render(TemplateContext(event: event, args: ["rest": "a b  c", "n": "4"], schedule: ["name": "nightly"]))
}

private func config(_ bytes: [UInt8]) {
    _ = try? MLHookConfig.parse(yaml: String(decoding: bytes, as: UTF8.self), file: "fuzz.yaml")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    switch target {
    case "verifiers": verifiers(bytes)
    case "json": json(bytes)
    case "form": form(bytes)
    case "cron": cron(bytes)
    case "template": template(bytes)
    case "config": config(bytes)
    default: fatalError("unknown MLHOOK_FUZZ_TARGET \(target)")
    }
    return 0
}
