import AMLLocal
import Foundation
import HTTPTypes
import MLHookCore
import TestSupport
import Testing

/// aml-local's v2 surface as a hostile or careless client meets it: the blob service takes only the SAS it signed,
/// for its container, and no path that leaves it; jobs and models refuse what Azure ML would, with ARM errors; any
/// api-version is accepted; a command runs confined, with its inputs substituted as single shell words.
@Suite struct AMLLocalV2Tests {
    func startUpload(_ a: AMLClient, _ token: String) async throws -> (blob: String, sas: String) {
        let r = try await a.request(.post, "/\(a.harness.ws)/codes/c1/versions/1/startPendingUpload?api-version=2023-04-01", token: token,
                                    body: Array(#"{"pendingUploadType":"TemporaryBlobReference"}"#.utf8))
        #expect(r.status == .ok, "\(r.text)")
        let sas = try #require(r.json.value(at: "blobReferenceForConsumption.credential.sasUri")?.string)
        let blob = try #require(r.json.value(at: "blobReferenceForConsumption.blobUri")?.string)
        return (String(URL(string: blob)!.path), String(sas.split(separator: "?")[1]))
    }

    @Test func theBlobServiceTakesOnlyItsOwnSASAndKeepsBlobsInTheirContainer() async throws {
        let h = try AMLHarness()
        defer { h.dir.remove() }
        try await h.live { a in
            let token = try await a.accessToken()
            let (container, sas) = try await startUpload(a, token)
            let put = try await a.request(.put, "\(container)/src/train.py?\(sas)", token: nil, headers: [("x-ms-blob-type", "BlockBlob")],
                                          body: Array("print(1)\n".utf8))
            #expect(put.status == .created && put.headers[HTTPField.Name("Content-MD5")!] != nil, "\(put.text)")
            // The same blob again with If-None-Match: * is a conflict, as in Azure.
            let again = try await a.request(.put, "\(container)/src/train.py?\(sas)", token: nil,
                                            headers: [("x-ms-blob-type", "BlockBlob"), ("If-None-Match", "*")], body: Array("x".utf8))
            #expect(again.status == .conflict && again.headers[HTTPField.Name("x-ms-error-code")!] == "BlobAlreadyExists")
            // No SAS, a SAS with its signature changed, or one for another container: 403, and nothing written.
            let bare = try await a.request(.put, "\(container)/src/evil.py", token: nil, headers: [("x-ms-blob-type", "BlockBlob")], body: [1])
            #expect(bare.status == .forbidden && bare.headers[HTTPField.Name("x-ms-error-code")!] == "AuthenticationFailed")
            let forged = sas.replacingOccurrences(of: "sig=", with: "sig=0")
            #expect(try await a.request(.put, "\(container)/src/evil.py?\(forged)", token: nil, headers: [("x-ms-blob-type", "BlockBlob")], body: [1]).status == .forbidden)
            let (other, _) = try await startUpload(a, token)
            #expect(try await a.request(.put, "\(other)/src/evil.py?\(sas)", token: nil, headers: [("x-ms-blob-type", "BlockBlob")], body: [1]).status == .forbidden)
            // A bad Content-MD5 is refused; encoded dot segments never leave the container.
            let md5 = try await a.request(.put, "\(container)/src/b.py?\(sas)", token: nil,
                                          headers: [("x-ms-blob-type", "BlockBlob"), ("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA==")], body: [1, 2])
            #expect(md5.status == .badRequest && md5.headers[HTTPField.Name("x-ms-error-code")!] == "Md5Mismatch")
            let escape = try await a.request(.put, "\(container)/%2E%2E/%2E%2E/escape.py?\(sas)", token: nil, headers: [("x-ms-blob-type", "BlockBlob")], body: [1])
            #expect(escape.status == .badRequest)
            #expect(!FileManager.default.fileExists(atPath: h.dir.file("blobs/escape.py")) && !FileManager.default.fileExists(atPath: h.dir.file("escape.py")))
            // Put Block + Put Block List make one blob; HEAD and GET read it back with its metadata.
            for (id, part) in [("MDAwMA==", "abc"), ("MDAwMQ==", "def")] {
                let r = try await a.request(.put, "\(container)/big.bin?comp=block&blockid=\(id.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&\(sas)",
                                            token: nil, body: Array(part.utf8))
                #expect(r.status == .created)
            }
            let list = try await a.request(.put, "\(container)/big.bin?comp=blocklist&\(sas)", token: nil,
                                           headers: [("x-ms-meta-upload_status", "completed")],
                                           body: Array("<BlockList><Latest>MDAwMA==</Latest><Latest>MDAwMQ==</Latest></BlockList>".utf8))
            #expect(list.status == .created)
            let got = try await a.request(.get, "\(container)/big.bin?\(sas)", token: nil)
            #expect(got.text == "abcdef" && got.headers[HTTPField.Name("x-ms-meta-upload_status")!] == "completed")
            let missing = try await a.request(.head, "\(container)/nothing.py?\(sas)", token: nil)
            #expect(missing.status == .notFound && missing.headers[HTTPField.Name("x-ms-error-code")!] == "BlobNotFound")
            let listing = try await a.request(.get, "\(container)?restype=container&comp=list&prefix=src/&\(sas)", token: nil)
            #expect(listing.text.contains("<Name>src/train.py</Name>") && !listing.text.contains("big.bin"))
        }
    }

    @Test func jobsAndModelsRefuseWhatAzureMLRefusesAndAcceptAnyAPIVersion() async throws {
        let h = try AMLHarness(confinement: .auto)
        defer { h.dir.remove() }
        try await h.live { a in
            let token = try await a.accessToken()
            let ws = "/\(a.harness.ws)"
            func put(_ path: String, _ body: String, version: String = "2099-01-01-preview") async throws -> AMLClient.Reply {
                try await a.request(.put, "\(ws)\(path)?api-version=\(version)", token: token, body: Array(body.utf8))
            }
            let noEnv = try await put("/jobs/j1", #"{"properties":{"jobType":"Command","command":"echo hi"}}"#)
            #expect(noEnv.status == .badRequest && noEnv.json.value(at: "error.message")?.string?.contains("environmentId") == true)
            let sweep = try await put("/jobs/j1", #"{"properties":{"jobType":"Sweep","command":"x","environmentId":"azureml:e@latest"}}"#)
            #expect(sweep.status == .badRequest)
            let undefined = try await put("/jobs/j1", #"{"properties":{"jobType":"Command","command":"echo ${{inputs.missing}}","environmentId":"azureml:e@latest"}}"#)
            #expect(undefined.status == .badRequest && undefined.text.contains("inputs.missing"))
            let noCompute = try await put("/jobs/j1", #"{"properties":{"jobType":"Command","command":"echo","environmentId":"azureml:e@latest","computeId":"azureml:nope"}}"#)
            #expect(noCompute.status == .badRequest && noCompute.text.contains("nope"))
            // A timeout too large to count (it trapped converting to Int) is refused, and no run directory is left.
            let huge = try await put("/jobs/j1", #"{"properties":{"jobType":"Command","command":"echo","environmentId":"azureml:e@latest","limits":{"timeout":"PT9999999999999999999999999S"}}}"#)
            #expect(huge.status == .badRequest && huge.text.contains("limits.timeout"))
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: h.dir.file("runs"))) ?? []).isEmpty)
            let noAPIVersion = try await a.request(.get, "\(ws)/jobs", token: token)
            #expect(noAPIVersion.status == .badRequest)
            #expect(try await a.request(.get, "\(ws)/jobs/j1?api-version=2024-01-01-preview", token: nil).status == .unauthorized)

            // A serverless job whose input is hostile shell text: it arrives as one argument, not as shell syntax.
            let hostile = #"x; touch pwned; echo $(id)"#
            // Its standard output and error go to one log, in the order written (as Azure's std_log.txt).
            let ok = try await put("/jobs/j2", """
                {"properties":{"jobType":"Command","command":"python -c 'import sys; print(sys.argv[1:])' ${{inputs.t}}; echo to-stderr >&2; echo after","environmentId":"azureml://registries/azureml/environments/sklearn-1.5/labels/latest","inputs":{"t":{"jobInputType":"literal","value":"\(hostile)"}}}}
                """)
            #expect(ok.status == .created, "\(ok.text)")
            let done = try await a.waitFor(token, run: "j2", ["Completed", "Failed"])
            #expect(done["status"]?.string == "Completed", "\(done)")
            let details = try await a.request(.get, "/history/v1.0\(ws)/runs/j2/details", token: token)
            let logURL = try #require(details.json.value(at: "logFiles")?.object["user_logs/std_log.txt"]?.string)
            let log = try await a.request(.get, String(logURL.dropFirst(a.harness.aml.settings.baseURL.count)), token: nil)
            #expect(log.text == "['\(hostile)']\nto-stderr\nafter\n", "\(log.text)")
            let uuid = try #require(done["runUuid"]?.string)
            #expect(!FileManager.default.fileExists(atPath: h.dir.file("runs/\(uuid)/project/pwned")))
            // Without a space or quote in it, shell syntax is still quoted (a redirection would create the file).
            let bare = #"x;>pwned2"#
            #expect(try await put("/jobs/j3", """
                {"properties":{"jobType":"Command","command":"python -c 'import sys; print(sys.argv[1:])' ${{inputs.t}}","environmentId":"azureml:e@latest","inputs":{"t":{"jobInputType":"literal","value":"\(bare)"}}}}
                """).status == .created)
            let third = try await a.waitFor(token, run: "j3", ["Completed", "Failed"])
            #expect(third["status"]?.string == "Completed", "\(third)")
            let thirdDir = h.dir.file("runs/\(third["runUuid"]?.string ?? "")/project")
            #expect(!FileManager.default.fileExists(atPath: thirdDir + "/pwned2"), "the input ran as shell syntax")

            // Models: a job output that names no job is refused; the answer always carries flavors.
            let orphan = try await put("/models/m/versions/1", #"{"properties":{"modelUri":"azureml://jobs/nope/outputs/artifacts/paths/model/"}}"#)
            #expect(orphan.status == .badRequest)
            let model = try await put("/models/m/versions/1", #"{"properties":{"modelUri":"azureml://jobs/j2/outputs/artifacts/paths/model/","modelType":"CustomModel"}}"#)
            #expect(model.status == .created && model.json.value(at: "properties.flavors") == [:])
            let next = try await a.request(.get, "\(ws)/models/m?api-version=2023-08-01-preview", token: token)
            #expect(next.json.value(at: "properties.nextVersion")?.string == "2")
            // A version named Int.max does not make the next number trap.
            let top = try await put("/models/m/versions/\(Int.max)", #"{"properties":{"modelUri":"azureml://jobs/j2/outputs/artifacts/paths/model/"}}"#)
            #expect(top.status == .created)
            #expect(try await a.request(.get, "\(ws)/models/m?api-version=2023-08-01-preview", token: token).json.value(at: "properties.nextVersion")?.string == "2")
        }
    }
}
