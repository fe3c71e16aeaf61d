import Foundation
import TestSupport
import Testing

/// `server.tls`: mlhook serves HTTPS itself with PEM files, for deployments without a proxy.
@Suite struct TLSTests {
    func run(_ args: [String], in dir: String) async throws -> (status: Int32, output: String) {
        try await runProcessAsync("/usr/bin/env", args, directory: dir)
    }

    @Test func servesHTTPSWithTheConfiguredCertificateAndRefusesBadFiles() async throws {
        let dir = try TemporaryDirectory("mlhook-tls")
        defer { dir.remove() }
        let made = try await run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], in: dir.path)
        #expect(made.status == 0, "\(made.output)")
        func config(key: String) -> String {
            """
            server: { listen: "127.0.0.1:0", tls: { cert_file: "\(dir.file("cert.pem"))", key_file: "\(key)" } }
            store: { path: "\(dir.file("mlhook.db"))" }
            azureml: { mode: local, local: { data_dir: "\(dir.file("aml"))" } }
            sources: [ { name: github, type: github, secrets: [ { env: GH } ] } ]
            """
        }
        try config(key: dir.file("key.pem")).write(toFile: dir.file("mlhook.yaml"), atomically: true, encoding: .utf8)
        let server = try await ServerProcess(arguments: ["serve", "--config", dir.file("mlhook.yaml")], environment: ["GH": "tls-secret"], directory: dir.path)
        defer { server.signal(SIGTERM) }
        #expect(server.log.contains("listening on https://127.0.0.1:\(server.port)"))
        let https = try await run(["curl", "-sS", "--cacert", dir.file("cert.pem"), "https://127.0.0.1:\(server.port)/healthz"], in: dir.path)
        #expect(https.status == 0 && https.output.contains("\"ok\""), "\(https.output)")
        let untrusted = try await run(["curl", "-sS", "https://127.0.0.1:\(server.port)/healthz"], in: dir.path)
        #expect(untrusted.status != 0, "a client that does not trust the certificate is refused by its own TLS check")
        // mlhook send follows server.tls: https, trusting a private CA with --cacert; without it, the failure says why.
        let cli = try String(contentsOfFile: dir.file("mlhook.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "listen: \"127.0.0.1:0\"", with: "listen: \"127.0.0.1:\(server.port)\"")
        try cli.write(toFile: dir.file("cli.yaml"), atomically: true, encoding: .utf8)
        let distrust = try await runMLHook(["send", "github", "ping", "--config", dir.file("cli.yaml")], environment: ["GH": "tls-secret"], directory: dir.path)
        #expect(distrust.status == 1 && distrust.output.contains("TLS handshake failed") && distrust.output.contains("--cacert")
                && !distrust.output.contains("/checkouts/") && !distrust.output.contains(".cc:"), "\(distrust.output)")
        let signed = try await runMLHook(["send", "github", "ping", "--config", dir.file("cli.yaml"), "--cacert", dir.file("cert.pem")],
                                              environment: ["GH": "tls-secret"], directory: dir.path)
        #expect(signed.status == 0 && signed.output.hasPrefix("202 "), "\(signed.output)")
        let plain = try await run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:\(server.port)/healthz"], in: dir.path)
        #expect(plain.status != 0 && !plain.output.contains("\"ok\""), "plain HTTP is not served on the TLS port")

        // A key file that is not a key: a clear error naming the key, exit 2.
        try "not a key\n".write(toFile: dir.file("bad.pem"), atomically: true, encoding: .utf8)
        try config(key: dir.file("bad.pem")).write(toFile: dir.file("bad.yaml"), atomically: true, encoding: .utf8)
        let bad = try await runMLHook(["serve", "--config", dir.file("bad.yaml")], environment: ["GH": "tls-secret"], directory: dir.path)
        #expect(bad.status == 2 && bad.output.contains("server.tls.key_file: cannot read a PEM private key from \(dir.file("bad.pem"))"), "\(bad.output)")
    }
}
