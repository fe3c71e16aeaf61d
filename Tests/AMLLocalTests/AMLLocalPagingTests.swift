import Foundation
import HTTPTypes
import Testing

/// Paging values a client controls: a negative or absurd one is a 400 naming it, never a crash (with the
/// embedded aml-local, a trap here took `mlhook serve` down with it).
@Suite struct AMLLocalPagingTests {
    @Test func badPagingValuesAreA400AndTheServerKeepsAnswering() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { api in
            let token = try await api.accessToken()
            let models = "/modelmanagement/v1.0/\(h.ws)/models"
            let json = [("Content-Type", "application/json")]
            for _ in 0..<3 {
                _ = try await api.request(.post, models, token: token, headers: json,
                                          body: Array(#"{"name":"churn","url":"aml://artifact/x/model.pkl","mimeType":"application/octet-stream"}"#.utf8))
            }
            for bad in ["-1", "-9223372036854775808", "9223372036854775808", "1e3", "abc", "99999999999"] {
                for key in ["offset", "$skipToken"] {
                    let r = try await api.request(.get, "\(models)?\(key)=\(bad)", token: token)
                    #expect(r.status == .badRequest, "\(key)=\(bad)")
                    #expect(r.text.contains(key.lowercased()), "the error names \(key): \(r.text)")
                }
            }
            #expect(try await api.request(.get, "\(models)?count=-5", token: token).status == .badRequest)
            let history = "/history/v1.0/\(h.ws)/experiments:query"
            _ = try await api.request(.post, "/history/v1.0/\(h.ws)/experiments/demo", token: token, headers: json, body: Array("{}".utf8))
            for bad in ["-1", "-9223372036854775808", "x"] {
                let r = try await api.request(.post, history, token: token, headers: json, body: Array(#"{"continuationToken":"\#(bad)"}"#.utf8))
                #expect(r.status == .badRequest && r.text.contains("continuationToken"), "continuationToken \(bad): \(r.text)")
            }
            // Good values still page, and the server is still up.
            let page = try await api.request(.get, "\(models)?offset=1&count=1", token: token).json
            #expect(page["value"]?.array?.count == 1)
            #expect(try await api.request(.post, history, token: token, headers: json, body: Array(#"{"continuationToken":"0"}"#.utf8)).status == .ok)
        }
    }
}
