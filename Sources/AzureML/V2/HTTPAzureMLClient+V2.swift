import Foundation
import MLHookCore
import Signing
import NIOHTTP1
import ZIPFoundation

/// The v2 surface over ARM (shared/azureml-v2.md): code assets, command jobs, v2 models and managed online
/// endpoints, sent with `AzureMLSettings.v2APIVersion`, with the same transport rules as v1 (cached tokens,
/// retries with Retry-After, typed errors with the request id, long-running operations followed).
extension HTTPAzureMLClient {
    /// A workspace child's URL with the v2 api-version.
    func v2(_ path: String, query: String = "") -> String {
        arm(workspacePath(nil) + path, query: query, apiVersion: settings.v2APIVersion)
    }

    /// The ARM id of a workspace child (`/subscriptions/…/workspaces/{ws}{path}`).
    public func v2ID(_ path: String) -> String { workspacePath(nil) + path }

    // MARK: Code assets

    /// A folder's files as a code asset, uploaded once per content: when a code version with the same content hash
    /// exists (under any name), its id is returned and nothing is uploaded; else the files go to the SAS container
    /// `startPendingUpload` hands out (Put Blob, or Put Block + Put Block List above `blockSize`) and the version is
    /// registered as `{name}:{hash prefix}`, so a retry lands on the same version.
    /// - Returns: The code version's ARM id.
    public func ensureCode(name: String, files: [CodeFile], blockSize: Int = 4 << 20) async throws -> String {
        let hash = CodeFile.contentHash(files)
        let hits = try await transport.send(.GET, v2("/codes/\(name)/versions", query: "hash=\(hash)&hashVersion=202208")).json["value"]?.array ?? []
        if let id = hits.first?["id"]?.string { return id }
        let version = String(hash.prefix(32))
        let pending = try await transport.send(.POST, v2("/codes/\(name)/versions/\(version)/startPendingUpload"),
                                               body: .json(["pendingUploadType": "TemporaryBlobReference"])).json
        guard let blobURI = pending.value(at: "blobReferenceForConsumption.blobUri")?.string,
              let sas = pending.value(at: "blobReferenceForConsumption.credential.sasUri")?.string,
              let query = sas.split(separator: "?", maxSplits: 1).dropFirst().first else {
            throw AzureMLError(code: .invalidResponse, message: "startPendingUpload answered no blobUri/sasUri")
        }
        let folder = "mlhook-\(version)"
        for file in files {
            let url = "\(blobURI)/\(folder)/\(file.path.split(separator: "/").map { Self.escape(String($0)) }.joined(separator: "/"))"
            try await putBlob(url: url, sas: String(query), bytes: file.bytes, blockSize: blockSize)
        }
        let body: JSONValue = ["properties": ["codeUri": .string("\(blobURI)/\(folder)"), "isAnonymous": true,
                                              "description": "uploaded by mlhook",
                                              "properties": ["hash_sha256": .string(hash), "hash_version": "202208"]]]
        let made = try await transport.send(.PUT, v2("/codes/\(name)/versions/\(version)"), body: .json(body)).json
        return made["id"]?.string ?? v2ID("/codes/\(name)/versions/\(version)")
    }

    /// Uploads one blob with the SAS (no bearer token: the SAS is the credential).
    func putBlob(url: String, sas: String, bytes: [UInt8], blockSize: Int) async throws {
        let common = [("x-ms-version", "2026-10-06"), ("x-ms-date", HTTPDate.string())]
        if bytes.count <= blockSize {
            _ = try await transport.send(.PUT, "\(url)?\(sas)", body: .raw(bytes, contentType: "application/octet-stream"),
                                         headers: common + [("x-ms-blob-type", "BlockBlob")], authenticate: false)
            return
        }
        var ids: [String] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(offset + blockSize, bytes.count)
            let id = Data(String(format: "%08d", ids.count).utf8).base64EncodedString()
            let escaped = id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? id
            _ = try await transport.send(.PUT, "\(url)?comp=block&blockid=\(escaped)&\(sas)", body: .raw(Array(bytes[offset..<end]), contentType: "application/octet-stream"),
                                         headers: common, authenticate: false)
            ids.append(id)
            offset = end
        }
        let list = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>" + ids.map { "<Latest>\($0)</Latest>" }.joined() + "</BlockList>"
        _ = try await transport.send(.PUT, "\(url)?comp=blocklist&\(sas)", body: .raw(Array(list.utf8), contentType: "application/xml"),
                                     headers: common, authenticate: false)
    }

    // MARK: Command jobs

    /// Submits (PUT) a command job. The same name again is the same job: Azure ML answers the existing one.
    public func submitJob(name: String, properties: JSONValue) async throws -> JSONValue {
        try await transport.send(.PUT, v2("/jobs/\(name)"), body: .json(["properties": properties])).json
    }

    /// A job (`properties.status`, `properties.services.Studio.endpoint`).
    public func job(name: String) async throws -> JSONValue {
        try await transport.send(.GET, v2("/jobs/\(name)")).json
    }

    /// Asks for a job's cancellation and follows the operation (202 + Location) to its end.
    public func cancelJob(name: String) async throws {
        let reply = try await transport.send(.POST, v2("/jobs/\(name)/cancel"))
        try await followOperation(reply)
    }

    /// A job's run-history details (`status`, `logFiles` name → URL), through the workspace's discovery URL as the
    /// SDK's `jobs.stream` does.
    public func jobDetails(name: String) async throws -> JSONValue {
        try await transport.send(.GET, try await dataPlane(settings.historyServiceKey, "history", "/runs/\(name)/details")).json
    }

    // MARK: Models (v2)

    /// A model's versions, newest first (`listViewType=All` includes archived ones).
    public func modelVersions(name: String, includeArchived: Bool = false) async throws -> [JSONValue] {
        let reply = try await transport.send(.GET, v2("/models/\(name)/versions", query: "listViewType=\(includeArchived ? "All" : "ActiveOnly")&%24orderBy=createdtime%20desc"),
                                             accept: [404])
        return reply.status == 404 ? [] : (reply.json["value"]?.array ?? [])
    }

    /// The workspace's v2 model names (model containers), archived ones included.
    public func modelNames() async throws -> [String] {
        let reply = try await transport.send(.GET, v2("/models", query: "listViewType=All"), accept: [404])
        return reply.status == 404 ? [] : (reply.json["value"]?.array ?? []).compactMap { $0["name"]?.string }
    }

    /// One v2 model version, or nil when there is none.
    public func modelVersion(name: String, version: String) async throws -> JSONValue? {
        let reply = try await transport.send(.GET, v2("/models/\(name)/versions/\(version)"), accept: [404])
        guard reply.status != 404 else { return Optional.none }  // a bare nil is JSONValue's null literal here
        return reply.json
    }

    /// Creates (or replaces) a model version.
    public func createModelVersion(name: String, version: String, properties: JSONValue) async throws -> JSONValue {
        try await transport.send(.PUT, v2("/models/\(name)/versions/\(version)"), body: .json(["properties": properties])).json
    }

    /// Registers the next version of a model (one more than the highest numeric version).
    public func registerModelV2(name: String, properties: JSONValue) async throws -> JSONValue {
        let existing = try await modelVersions(name: name, includeArchived: true)
        // Below Int.max, so the next one can be counted (a version of Int.max would trap the + 1).
        let highest = existing.compactMap { $0["name"]?.string.flatMap { Int($0) } }.filter { $0 < Int.max }.max() ?? 0
        let next = highest + 1
        return try await createModelVersion(name: name, version: String(next), properties: properties)
    }

    /// Archives (or restores) a model version: GET it, PUT it back with `isArchived`, as the SDK does.
    public func archiveModelVersion(name: String, version: String, archived: Bool = true) async throws -> JSONValue {
        let current = try await transport.send(.GET, v2("/models/\(name)/versions/\(version)")).json
        let properties = (current["properties"] ?? [:]).setting("isArchived", .bool(archived))
        return try await createModelVersion(name: name, version: version, properties: properties)
    }

    /// Deletes a model version; an absent one counts as deleted.
    public func deleteModelVersion(name: String, version: String) async throws {
        _ = try await transport.send(.DELETE, v2("/models/\(name)/versions/\(version)"), accept: [404, 204])
    }

    // MARK: Online endpoints

    /// Scores a managed online endpoint: its scoring URI and key from ARM, then `POST` with the key (or, for
    /// `AMLToken` endpoints, a token from `…/token`).
    /// - Parameter deployment: Sent as `azureml-model-deployment` to pick one.
    public func invokeEndpoint(_ name: String, body: JSONValue, deployment: String? = nil) async throws -> JSONValue {
        let endpoint = try await transport.send(.GET, v2("/onlineEndpoints/\(name)")).json
        guard let uri = endpoint.value(at: "properties.scoringUri")?.string else {
            throw AzureMLError(code: .invalidResponse, message: "endpoint \(name) has no scoringUri")
        }
        let credential: String?
        if endpoint.value(at: "properties.authMode")?.string?.lowercased() == "amltoken" {
            credential = try await transport.send(.POST, v2("/onlineEndpoints/\(name)/token")).json["accessToken"]?.string
        } else {
            credential = try await transport.send(.POST, v2("/onlineEndpoints/\(name)/listKeys")).json["primaryKey"]?.string
        }
        guard let credential else { throw AzureMLError(code: .invalidResponse, message: "endpoint \(name) gave no key or token") }
        var headers = [("Authorization", "Bearer \(credential)")]
        if let deployment { headers.append(("azureml-model-deployment", deployment)) }
        let reply = try await transport.send(.POST, uri, body: .json(body), headers: headers, authenticate: false)
        return reply.json
    }
}

/// One file of a code asset: its path inside the folder and its bytes.
public struct CodeFile: Sendable, Equatable {
    public let path: String
    public let bytes: [UInt8]
    public init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = bytes
    }

    /// SHA-256 over every file's path, size and bytes, in path order: equal folders hash equal.
    public static func contentHash(_ files: [CodeFile]) -> String {
        var all: [UInt8] = []
        for f in files.sorted(by: { $0.path < $1.path }) {
            all += Array(f.path.utf8) + [0] + Array(String(f.bytes.count).utf8) + [0] + f.bytes
        }
        return Digest.sha256Hex(all)
    }

    /// The files of a zip (directories skipped), in path order.
    /// - Throws: when the zip cannot be read or holds a path that leaves the folder.
    public static func files(ofZip zip: [UInt8]) throws -> [CodeFile] {
        let archive = try Archive(data: Data(zip), accessMode: .read)
        var files: [CodeFile] = []
        for entry in archive where entry.type == .file {
            let path = entry.path
            guard !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
                throw AzureMLError(code: .invalidResponse, message: "the code zip holds \(path), which leaves its folder")
            }
            var data = Data()
            _ = try archive.extract(entry, skipCRC32: false) { data.append($0) }
            files.append(CodeFile(path: path, bytes: [UInt8](data)))
        }
        return files.sorted { $0.path < $1.path }
    }
}
