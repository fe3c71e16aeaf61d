import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore

extension AMLLocalServer {
    /// Model management (`/modelmanagement/v1.0{ws}/models…`, and the legacy `/api/…` form).
    func models(_ call: Call, ws: String, rest: [String]) throws(AMLError) -> Response {
        if rest.first?.lowercased() == "services" { return try services(call, ws: ws, rest: rest) }
        guard rest.first?.lowercased() == "models" else {
            throw AMLError(.notFound, "NotFound", "No route for \(rest.joined(separator: "/")).")
        }
        switch (call.method, rest.count) {
        case (.post, 1):
            let body = try call.json()
            guard let name = body["name"]?.string, case .success = ActionSchema.check(.name(max: 255, dots: true), name) else {
                throw AMLError(.badRequest, "BadRequest", "name is required: letters, digits, -, _ and . (at most 255).")
            }
            guard let url = body["url"]?.string, !url.isEmpty else { throw AMLError(.badRequest, "BadRequest", "url is required.") }
            let version = try guardStore { try store.next("model:\(ws):\(name.lowercased())") }
            let id = "\(name):\(version)"
            let now = Self.now()
            let model: JSONValue = [
                "id": .string(id), "name": .string(name), "version": .number(Double(version)),
                "framework": body["framework"] ?? "Custom", "frameworkVersion": body["frameworkVersion"] ?? nil,
                "url": .string(url), "mimeType": body["mimeType"] ?? "application/json", "description": body["description"] ?? nil,
                "createdTime": .string(now), "modifiedTime": .string(now), "unpack": body["unpack"] ?? false,
                "parentModelId": body["parentModelId"] ?? nil, "runId": body["runId"] ?? nil, "experimentName": body["experimentName"] ?? nil,
                "kvTags": body["kvTags"] ?? [:], "properties": body["properties"] ?? [:], "derivedModelIds": [], "datasets": [],
                "sampleInputData": nil, "sampleOutputData": nil, "resourceRequirements": nil, "createdBy": ["userName": "aml-local"],
            ]
            try guardStore { try store.put("model", ws, id, model) }
            return Self.json(.ok, model)
        case (.get, 1):
            var all = try guardStore { try store.list("model", ws) }
            if let name = call.query["name"] { all = all.filter { $0["name"]?.string == name } }
            if let tag = call.query["tag"] { all = all.filter { $0["kvTags"]?[tag] != nil } }
            if let run = call.query["runid"] { all = all.filter { $0["runId"]?.string == run } }
            if call.query["latestversiononly"] == "true" {
                var latest: [String: JSONValue] = [:]
                for m in all { if let n = m["name"]?.string, (latest[n]?["version"]?.int ?? 0) < (m["version"]?.int ?? 0) { latest[n] = m } }
                all = all.filter { m in latest.values.contains(m) }
            }
            let offset = try Self.pagingOffset(call.query["$skiptoken"] ?? call.query["offset"], name: call.query["$skiptoken"] == nil ? "offset" : "$skiptoken")
            let count = try Self.pageSize(call.query["count"], name: "count")
            let page = Array(all.dropFirst(offset).prefix(count))
            let more = offset + page.count < all.count
            let nextOffset = offset + page.count
            var nextLink: JSONValue = nil
            if more {
                let path = "/" + call.segments.map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? $0 }.joined(separator: "/")
                var q = call.query.filter { !["$skiptoken", "offset"].contains($0.key) }
                q["$skipToken"] = String(nextOffset)
                nextLink = .string(call.base + path + "?" + q.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&"))
            }
            return Self.json(.ok, ["value": .array(page), "nextLink": nextLink, "continuationToken": more ? .string(String(nextOffset)) : nil])
        case (.get, 2):
            guard let m = try guardStore({ try store.get("model", ws, rest[1]) }) else { throw modelNotFound(rest[1]) }
            return Self.json(.ok, m)
        case (.delete, 2):
            // 200 when deleted, 204 when there was nothing to delete: both mean "gone".
            return try guardStore({ try store.delete("model", ws, rest[1]) }) ? Self.json(.ok, "{}") : Self.json(.noContent, "")
        case (.patch, 2):
            guard var m = try guardStore({ try store.get("model", ws, rest[1]) }) else { throw modelNotFound(rest[1]) }
            guard case .array(let ops) = try call.json() else { throw AMLError(.badRequest, "BadRequest", "PATCH takes a JSON Patch array.") }
            for op in ops {
                guard let kind = op["op"]?.string, ["add", "replace", "remove"].contains(kind), let path = op["path"]?.string, path.hasPrefix("/") else {
                    throw AMLError(.badRequest, "BadRequest", "each patch operation needs op (add, replace, remove) and a /path")
                }
                let dotted = path.dropFirst().split(separator: "/").joined(separator: ".")
                guard ["description", "kvTags", "properties"].contains(where: { dotted == $0 || dotted.hasPrefix($0 + ".") }) else {
                    throw AMLError(.badRequest, "BadRequest", "\(path) cannot be changed (description, kvTags and properties can)")
                }
                m = m.setting(path: dotted, kind == "remove" ? nil : op["value"])
            }
            m = m.setting("modifiedTime", .string(Self.now()))
            try guardStore { try store.put("model", ws, rest[1], m) }
            return Self.json(.ok, m)
        default:
            throw AMLError(.methodNotAllowed, "MethodNotAllowed", "\(call.method) is not supported here.")
        }
    }

    func modelNotFound(_ id: String) -> AMLError { AMLError(.notFound, "NotFound", "Model \(id) was not found.") }
}
