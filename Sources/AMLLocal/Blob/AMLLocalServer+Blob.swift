import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore
import NIOCore
import Signing

/// The subset of Azure Blob storage that code-asset uploads use (shared/azureml-v2.md §3), served at
/// `/blob/{account}/{container}/{blob}` and authorized only by a SAS that aml-local signed itself
/// (`startPendingUpload` hands it out):
///
/// - `HEAD`/`GET` a blob (404 with `x-ms-error-code: BlobNotFound`), its `x-ms-meta-*` metadata included;
/// - `PUT` a block blob (`If-None-Match: *` → 409 `BlobAlreadyExists`, `Content-MD5` checked);
/// - `PUT ?comp=metadata`, `PUT ?comp=block&blockid=…` and `PUT ?comp=blocklist`;
/// - `GET ?restype=container&comp=list[&prefix=]` (XML).
///
/// Blobs are files under `DIR/blobs/{account}/{container}/`; their metadata is kept in the local store.
extension AMLLocalServer {
    /// How long a SAS that `startPendingUpload` hands out is valid.
    static let sasLifetime: TimeInterval = 12 * 3600

    /// A SAS query for a container, signed with the server's token key.
    func containerSAS(account: String, container: String) -> String {
        let expiry = Date().addingTimeInterval(Self.sasLifetime).formatted(.iso8601)
        let permissions = "racwl"
        let sig = tokens.sign("blob|\(account)/\(container)|\(expiry)|\(permissions)")
        let encodedExpiry = expiry.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? expiry
        return "sv=2026-10-06&sr=c&sp=\(permissions)&se=\(encodedExpiry)&sig=\(sig)"
    }

    /// The directory holding a container's blobs.
    func containerDirectory(account: String, container: String) -> URL {
        URL(fileURLWithPath: settings.dataDirectory).appendingPathComponent("blobs").appendingPathComponent(account.lowercased())
            .appendingPathComponent(container.lowercased())
    }

    /// A blob URL's local file or folder (`{base}/blob/{account}/{container}/{path}` on either listener), or nil
    /// when the URL is not one of this server's blob URLs.
    ///
    /// The URL's path is decoded once, by splitting its encoded form and decoding each part, and every part must be
    /// one path component (`ContainedPath`); the file, with its links resolved, must lie under the container's folder.
    func localPath(ofBlobURL url: String) -> URL? {
        guard let u = URLComponents(string: url), u.percentEncodedPath.hasPrefix("/blob/") else { return nil }
        var raw = u.percentEncodedPath.dropFirst("/blob/".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if raw.last == "" { raw.removeLast() }  // a folder's URL ends in /
        let names = raw.compactMap { $0.removingPercentEncoding }
        guard names.count == raw.count, names.count >= 2 else { return nil }
        let container = containerDirectory(account: names[0], container: names[1])
        guard let file = ContainedPath.join(container, Array(names.dropFirst(2))),
              let resolved = ContainedPath.resolve(file.path, under: container.path) else { return nil }
        return URL(fileURLWithPath: resolved)
    }

    func blob(_ call: Call) throws(AMLError) -> Response {
        let s = call.segments
        guard s.count >= 3 else { throw blobError(.badRequest, "InvalidUri", "The requested URI does not represent any resource on the server.") }
        let account = s[1], container = s[2]
        guard container.range(of: "^[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]$", options: .regularExpression) != nil else {
            throw blobError(.badRequest, "InvalidResourceName", "The specifed resource name contains invalid characters.")
        }
        try checkSAS(call, account: account, container: container)
        let names = Array(s.dropFirst(3))
        if names.isEmpty {
            guard call.method == .get, call.query["restype"] == "container", call.query["comp"] == "list" else {
                throw blobError(.badRequest, "UnsupportedHttpVerb", "aml-local's blob service lists containers' blobs only.")
            }
            return try listBlobs(account: account, container: container, prefix: call.query["prefix"] ?? "")
        }
        // The router decoded each segment once: a segment that still holds a separator was sent encoded (%2F, %5C).
        let root = containerDirectory(account: account, container: container)
        guard ContainedPath.isComponent(account), names.joined(separator: "/").utf8.count <= 1024, let file = ContainedPath.join(root, names),
              ContainedPath.parentStaysUnder(file, root: URL(fileURLWithPath: settings.dataDirectory)) else {
            throw blobError(.badRequest, "InvalidResourceName", "The blob name is not valid: each part must be a plain name (no ., .., separators, encoded separators or NUL).")
        }
        let blobName = names.joined(separator: "/")
        let metaKey = "\(account.lowercased())/\(container.lowercased())"
        switch (call.method, call.query["comp"]) {
        case (.head, nil), (.get, nil):
            guard let meta = try guardStore({ try store.get("blob", metaKey, blobName) }), let opened = FileResponse.open(file.path) else {
                throw blobError(.notFound, "BlobNotFound", "The specified blob does not exist.")
            }
            var headers = blobHeaders(meta)
            headers.append(("Content-Type", meta["contentType"]?.string ?? "application/octet-stream"))
            headers.append(("x-ms-blob-type", "BlockBlob"))
            for (k, v) in meta["metadata"]?.object ?? [:] { headers.append(("x-ms-meta-\(k)", v.string ?? "")) }
            headers.append(("Content-Length", String(opened.size)))
            if call.method == .head {
                try? opened.handle.close()
                return Self.raw(.ok, Data(), headers: headers)
            }
            // Sent from the file in chunks: a large model or snapshot is never whole in memory.
            var response = Self.raw(.ok, Data(), headers: headers)
            response.body = FileResponse.body(opened.handle, size: opened.size)
            return response
        case (.put, nil):
            guard call.headers[HTTPField.Name("x-ms-blob-type")!]?.lowercased() == "blockblob" else {
                throw blobError(.badRequest, "InvalidHeaderValue", "x-ms-blob-type must be BlockBlob.")
            }
            if call.headers[.ifNoneMatch] == "*", try guardStore({ try store.get("blob", metaKey, blobName) }) != nil {
                throw blobError(.conflict, "BlobAlreadyExists", "The specified blob already exists.")
            }
            let upload = try spooledUpload(call)
            try checkMD5(call, upload.md5)
            return try storeBlob(call, upload, file: file, metaKey: metaKey, name: blobName)
        case (.put, "metadata"):
            guard let meta = try guardStore({ try store.get("blob", metaKey, blobName) }) else {
                throw blobError(.notFound, "BlobNotFound", "The specified blob does not exist.")
            }
            let updated = meta.setting("metadata", .object(Self.metadata(call.headers))).setting("etag", .string(Self.etag()))
                .setting("lastModified", .string(HTTPDate.string()))
            try guardStore { try store.put("blob", metaKey, blobName, updated) }
            return Self.raw(.ok, Data(), headers: blobHeaders(updated))
        case (.put, "block"):
            guard let id = call.query["blockid"], !id.isEmpty, id.utf8.count <= 128 else {
                throw blobError(.badRequest, "InvalidQueryParameterValue", "blockid is required.")
            }
            let upload = try spooledUpload(call)
            try checkMD5(call, upload.md5)
            let dir = blockDirectory(account: account, container: container, name: blobName)
            do {
                try upload.move(to: dir.appendingPathComponent(Digest.sha256Hex(Array(id.utf8))))
            } catch {
                throw blobError(.internalServerError, "InternalError", "cannot store the block: \(error)")
            }
            return Self.raw(.created, Data(), headers: [("x-ms-request-id", UUID().uuidString.lowercased()), ("x-ms-request-server-encrypted", "true")])
        case (.put, "blocklist"):
            let ids = Self.blockIDs(String(decoding: call.body, as: UTF8.self))
            let dir = blockDirectory(account: account, container: container, name: blobName)
            let parts = ids.map { dir.appendingPathComponent(Digest.sha256Hex(Array($0.utf8))).path }
            if let missing = parts.firstIndex(where: { !FileManager.default.fileExists(atPath: $0) }) {
                throw blobError(.badRequest, "InvalidBlockList", "The specified block list is invalid (block \(ids[missing]) was not uploaded).")
            }
            // The blocks are joined file to file, through the spool: the blob is never whole in memory.
            let joined = try joinBlocks(parts)
            defer { joined.discard() }
            let response = try storeBlob(call, joined, file: file, metaKey: metaKey, name: blobName)
            try? FileManager.default.removeItem(at: dir)
            return response
        default:
            throw blobError(.badRequest, "UnsupportedHttpVerb", "aml-local's blob service does not support \(call.method) with comp=\(call.query["comp"] ?? "").")
        }
    }

    /// The upload's body, received into the spool by `handle` before the route ran.
    private func spooledUpload(_ call: Call) throws(AMLError) -> SpooledBody {
        guard let upload = call.spooled else {
            throw blobError(.internalServerError, "InternalError", "The upload was not received.")
        }
        return upload
    }

    /// Moves the received blob into place and records its properties.
    private func storeBlob(_ call: Call, _ upload: SpooledBody, file: URL, metaKey: String, name: String) throws(AMLError) -> Response {
        let md5 = Data(upload.md5).base64EncodedString()
        do {
            try upload.move(to: file)
        } catch {
            throw blobError(.internalServerError, "InternalError", "cannot store the blob: \(error)")
        }
        let meta: JSONValue = ["etag": .string(Self.etag()), "lastModified": .string(HTTPDate.string()), "md5": .string(md5),
                               "size": .number(Double(upload.size)), "contentType": .string(call.headers[HTTPField.Name("x-ms-blob-content-type")!] ?? "application/octet-stream"),
                               "metadata": .object(Self.metadata(call.headers))]
        try guardStore { try store.put("blob", metaKey, name, meta) }
        return Self.raw(.created, Data(), headers: blobHeaders(meta) + [("Content-MD5", md5), ("x-ms-request-server-encrypted", "true")])
    }

    /// The blocks' files joined, in order, into one new file in the spool (at most `maxUnpackedBytes`).
    private func joinBlocks(_ parts: [String]) throws(AMLError) -> SpooledBody {
        let out = incomingDirectory.appendingPathComponent(UUID().uuidString.lowercased())
        let md5 = MD5Stream()
        var size = 0
        do {
            try FileManager.default.createDirectory(at: incomingDirectory, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: out.path, contents: nil, attributes: [.posixPermissions: 0o600]),
                  let writer = FileHandle(forWritingAtPath: out.path) else {
                throw SpooledBody.Failure.io("cannot create \(out.path)")
            }
            defer { try? writer.close() }
            for part in parts {
                guard let reader = FileHandle(forReadingAtPath: part) else { throw SpooledBody.Failure.io("cannot read a block") }
                defer { try? reader.close() }
                while let data = try reader.read(upToCount: FileResponse.chunk), !data.isEmpty {
                    size += data.count
                    guard size <= settings.maxUnpackedBytes else { throw SpooledBody.Failure.tooLarge }
                    data.withUnsafeBytes { md5.update($0) }
                    try writer.write(contentsOf: data)
                }
            }
        } catch SpooledBody.Failure.tooLarge {
            unlink(out.path)
            throw blobError(.contentTooLarge, "RequestBodyTooLarge", "The blob is too large.")
        } catch {
            unlink(out.path)
            throw blobError(.internalServerError, "InternalError", "cannot join the blocks: \(error)")
        }
        return SpooledBody(file: out, size: size, md5: md5.finish())
    }

    private func checkMD5(_ call: Call, _ md5: [UInt8]) throws(AMLError) {
        guard let sent = call.headers[HTTPField.Name("Content-MD5")!] else { return }
        guard sent == Data(md5).base64EncodedString() else {
            throw blobError(.badRequest, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
        }
    }

    private func blockDirectory(account: String, container: String, name: String) -> URL {
        URL(fileURLWithPath: settings.dataDirectory).appendingPathComponent("blobs/.blocks")
            .appendingPathComponent(Digest.sha256Hex(Array("\(account.lowercased())/\(container.lowercased())/\(name)".utf8)))
    }

    private func listBlobs(account: String, container: String, prefix: String) throws(AMLError) -> Response {
        let all = try guardStore { try store.names("blob", "\(account.lowercased())/\(container.lowercased())") }
        var xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"\(Self.xml(account))\" ContainerName=\"\(Self.xml(container))\">"
        xml += "<Prefix>\(Self.xml(prefix))</Prefix><Blobs>"
        for (name, meta) in all.sorted(by: { $0.0 < $1.0 }) where name.hasPrefix(prefix) {
            xml += "<Blob><Name>\(Self.xml(name))</Name><Properties><Last-Modified>\(meta["lastModified"]?.string ?? "")</Last-Modified>"
            xml += "<Etag>\(meta["etag"]?.string ?? "")</Etag><Content-Length>\(meta["size"]?.int ?? 0)</Content-Length>"
            xml += "<Content-Type>\(Self.xml(meta["contentType"]?.string ?? ""))</Content-Type><Content-MD5>\(meta["md5"]?.string ?? "")</Content-MD5>"
            xml += "<BlobType>BlockBlob</BlobType></Properties></Blob>"
        }
        xml += "</Blobs><NextMarker /></EnumerationResults>"
        return Self.raw(.ok, Data(xml.utf8), headers: [("Content-Type", "application/xml"), ("x-ms-request-id", UUID().uuidString.lowercased())])
    }

    /// The SAS must be one this server signed for the container, and not expired.
    func checkSAS(_ call: Call, account: String, container: String) throws(AMLError) {
        guard let sig = call.query["sig"], let expiry = call.query["se"], let permissions = call.query["sp"],
              tokens.verify("blob|\(account)/\(container)|\(expiry)|\(permissions)", sig) else {
            throw blobError(.forbidden, "AuthenticationFailed", "Server failed to authenticate the request. Make sure the SAS is one aml-local issued for this container.")
        }
        guard let until = try? Date(expiry, strategy: .iso8601), until > Date() else {
            throw blobError(.forbidden, "AuthenticationFailed", "Signed expiry time has passed.")
        }
    }

    func blobError(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> AMLError {
        AMLError(status, code, message, inner: "blob")
    }

    private func blobHeaders(_ meta: JSONValue) -> [(String, String)] {
        [("ETag", meta["etag"]?.string ?? ""), ("Last-Modified", meta["lastModified"]?.string ?? ""),
         ("x-ms-request-id", UUID().uuidString.lowercased()), ("x-ms-version", "2026-10-06")]
            + (meta["md5"]?.string.map { [("Content-MD5", $0)] } ?? [])
    }

    static func metadata(_ headers: HTTPFields) -> [String: JSONValue] {
        var m: [String: JSONValue] = [:]
        for field in headers where field.name.canonicalName.hasPrefix("x-ms-meta-") {
            m[String(field.name.canonicalName.dropFirst("x-ms-meta-".count))] = .string(field.value)
        }
        return m
    }

    /// The ids of `<BlockList><Latest|Committed|Uncommitted>id</…>…</BlockList>`, in order.
    static func blockIDs(_ xml: String) -> [String] {
        var ids: [String] = []
        let pattern = try! NSRegularExpression(pattern: "<(Latest|Committed|Uncommitted)>([^<]*)</\\1>")
        let ns = xml as NSString
        for m in pattern.matches(in: xml, range: NSRange(location: 0, length: ns.length)) { ids.append(ns.substring(with: m.range(at: 2))) }
        return ids
    }

    static func etag() -> String { "\"0x\(String(UInt64(Date().timeIntervalSince1970 * 1e6), radix: 16, uppercase: true))\"" }

    static func xml(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
