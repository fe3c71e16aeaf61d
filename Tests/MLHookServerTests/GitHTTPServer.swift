import ChildProcess
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Signing
import Synchronization

/// A git smart-HTTP server for tests: the real `git http-backend` (CGI) behind HTTP Basic authentication
/// with one user and token, as GitHub and GitLab serve private repositories over https.
final class GitHTTPServer: Sendable {
    let root: String
    let user: String
    let token: String
    private let log = Mutex<(authorized: Int, refused: Int)>((0, 0))
    var authorized: Int { log.withLock { $0.authorized } }
    var refused: Int { log.withLock { $0.refused } }

    /// Serves the bare repositories under `root` (`/{path}.git/...`).
    init(root: String, user: String, token: String) {
        self.root = root
        self.user = user
        self.token = token
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { req, _ in try await self.serve(req) }
        router.get("**", use: handler)
        router.post("**", use: handler)
        return router
    }

    func serve(_ req: Request) async throws -> Response {
        let expected = "Basic " + ByteEncoding.base64(Array("\(user):\(token)".utf8))
        guard req.headers[.authorization] == expected else {
            log.withLock { $0.refused += 1 }
            return Response(status: .unauthorized, headers: [.wwwAuthenticate: "Basic realm=\"git\""])
        }
        log.withLock { $0.authorized += 1 }
        let body = try await req.body.collect(upTo: 64 << 20)
        let tmp = FileManager.default.temporaryDirectory.path + "/git-cgi-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: tmp + ".in"); try? FileManager.default.removeItem(atPath: tmp + ".out") }
        FileManager.default.createFile(atPath: tmp + ".in", contents: Data(body.readableBytesView))
        FileManager.default.createFile(atPath: tmp + ".out", contents: nil)
        var env = ["GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": req.uri.path, "QUERY_STRING": req.uri.query ?? "",
                   "REQUEST_METHOD": req.method.rawValue, "CONTENT_TYPE": req.headers[.contentType] ?? "",
                   "CONTENT_LENGTH": String(body.readableBytes), "REMOTE_USER": user, "REMOTE_ADDR": "127.0.0.1",
                   "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        if let encoding = req.headers[.contentEncoding] { env["HTTP_CONTENT_ENCODING"] = encoding }
        if let proto = req.headers[HTTPField.Name("Git-Protocol")!] { env["GIT_PROTOCOL"] = proto }
        let input = open(tmp + ".in", O_RDONLY | O_CLOEXEC), output = open(tmp + ".out", O_WRONLY | O_CLOEXEC)
        defer { close(input); close(output) }
        if let child = try? ChildProcess.spawn("/usr/bin/env", ["git", "http-backend"], environment: env, input: input, output: output) {
            _ = await child.wait()
        }
        // CGI output: header lines, a blank line, the body.
        let out = [UInt8](FileManager.default.contents(atPath: tmp + ".out") ?? Data())
        var split = out.count
        var skip = 0
        for i in 0..<out.count {
            if out[i...].starts(with: [13, 10, 13, 10]) { split = i; skip = 4; break }
            if out[i...].starts(with: [10, 10]) { split = i; skip = 2; break }
        }
        var status = HTTPResponse.Status.ok
        var headers = HTTPFields()
        for line in String(decoding: out[..<split], as: UTF8.self).split(whereSeparator: { $0 == "\r\n" || $0 == "\n" || $0 == "\r" }) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name.lowercased() == "status" { status = .init(code: Int(value.prefix(3)) ?? 500) }
            else if let n = HTTPField.Name(name) { headers[n] = value }
        }
        let payload = Array(out[min(out.count, split + skip)...])
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: payload)))
    }
}
