import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore
import NIOCore

/// The page a job's studio URL opens (`services.Studio.endpoint`): its status, times, command, error and log, in
/// a browser with no sign-in. The URL is signed like a log URL (whoever has it may read the job), and the page
/// reloads itself until the job ends.
extension AMLLocalServer {
    /// A job's studio URL: `{base}/studio/runs/{runUuid}?sig=…`.
    func studioURL(_ run: JSONValue, base: String) -> String? {
        guard let uuid = run["runUuid"]?.string else { return nil }
        return "\(base)/studio/runs/\(uuid)?sig=\(tokens.sign("studio/\(uuid)"))"
    }

    /// `GET /studio/runs/{runUuid}?sig=…`.
    func studioPage(_ call: Call) throws(AMLError) -> Response {
        guard call.method == .get, call.segments.count == 3, call.lower(1) == "runs", UUID(uuidString: call.segments[2]) != nil,
              let sig = call.query["sig"], tokens.verify("studio/\(call.segments[2].lowercased())", sig) else {
            throw AMLError(.forbidden, "AuthorizationFailure", "The studio URL is not valid: open the one the job names (services.Studio.endpoint).")
        }
        let uuid = call.segments[2].lowercased()
        guard let run = try guardStore({ try store.all("run") }).map(\.body).first(where: { $0["runUuid"]?.string == uuid }) else {
            throw AMLError.notFound("The job")
        }
        let status = run["status"]?.string ?? "?"
        let terminal = RunExecutor.terminal.contains(status)
        let v2 = run["_v2"]
        let log = RunExecutor.tail("\(settings.dataDirectory)/runs/\(uuid)/logs/70_driver_log.txt", lines: 200)
        var rows: [(String, String)] = [
            ("Status", status), ("Experiment", v2?["experimentName"]?.string ?? ""), ("Display name", run["displayName"]?.string ?? ""),
            ("Compute", run["target"]?.string ?? ""), ("Created", run["createdUtc"]?.string ?? ""),
            ("Started", run["startTimeUtc"]?.string ?? ""), ("Ended", run["endTimeUtc"]?.string ?? ""),
        ]
        if let command = run.value(at: "runDefinition.command")?.string { rows.append(("Command", command)) }
        if let script = run["scriptName"]?.string { rows.append(("Script", script)) }
        if let message = run.value(at: "error.error.message")?.string { rows.append(("Error", message)) }
        let name = run["runId"]?.string ?? uuid
        let html = """
            <!doctype html>
            <html><head><meta charset="utf-8"><title>\(Self.html(name)) · aml-local</title>
            \(terminal ? "" : "<meta http-equiv=\"refresh\" content=\"3\">")
            <style>body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}th{text-align:left;padding-right:1em;vertical-align:top}
            pre{background:#f4f4f4;padding:1em;overflow:auto;max-height:40em}</style></head>
            <body><h1>\(Self.html(name))</h1><p>aml-local job (a local stand-in for Azure ML studio)\(terminal ? "" : "; this page reloads until the job ends")</p>
            <table>\(rows.filter { !$0.1.isEmpty }.map { "<tr><th>\($0.0)</th><td>\(Self.html($0.1))</td></tr>" }.joined())</table>
            <h2>Log (last 200 lines)</h2><pre>\(Self.html(log))</pre></body></html>
            """
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"]
        headers[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; style-src 'unsafe-inline'"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    static func html(_ s: String) -> String { xml(s).replacingOccurrences(of: "'", with: "&#39;") }
}
