import Foundation
import HTTPTypes
import Hummingbird
import MLHookCore

extension AMLLocalServer {
    /// ARM: resource groups, workspaces, computes, long-running operations.
    func arm(_ call: Call) throws(AMLError) -> Response {
        let s = call.segments
        if call.lower(0) == "operations", s.count == 2 { return try operation(call, id: s[1]) }
        guard s.count >= 3, call.lower(2) == "resourcegroups" else { throw AMLError(.notFound, "NotFound", "No such ARM resource.") }
        let sub = s[1]
        if s.count == 3, call.method == .get {
            let groups = try guardStore({ try store.list("group", sub.lowercased()) })
            return Self.json(.ok, ["value": .array(groups)])
        }
        let rg = s[3]
        let groupKey = Self.groupKey(sub, rg)
        if s.count == 4, call.method == .get {
            guard let g = try guardStore({ try store.get("group", sub.lowercased(), rg) }) else { throw AMLError(.notFound, "ResourceGroupNotFound", "Resource group '\(rg)' could not be found.") }
            return Self.json(.ok, g)
        }
        guard s.count >= 7, call.lower(4) == "providers", call.lower(5) == "microsoft.machinelearningservices", call.lower(6) == "workspaces" else {
            throw AMLError(.notFound, "NotFound", "No such ARM resource.")
        }
        guard try guardStore({ try store.get("group", sub.lowercased(), rg) }) != nil else {
            throw AMLError(.notFound, "ResourceGroupNotFound", "Resource group '\(rg)' could not be found.")
        }
        if s.count == 7 {
            guard call.method == .get else { throw AMLError(.methodNotAllowed, "MethodNotAllowed", "Use GET to list workspaces.") }
            return Self.json(.ok, ["value": .array(try guardStore({ try store.list("workspace", groupKey) }).map { materialize($0, base: call.base) })])
        }
        let ws = s[7]
        if s.count == 8 { return try workspace(call, sub: sub, rg: rg, name: ws) }
        if s.count >= 9, Self.v2Kinds.contains(call.lower(8)) {
            guard try guardStore({ try store.get("workspace", groupKey, ws) }) != nil else {
                throw AMLError(.notFound, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/\(ws)' under resource group '\(rg)' was not found.")
            }
            return try v2(call, ws: Workspace(key: Self.workspaceKey(sub, rg, ws), path: "/" + s[0..<8].joined(separator: "/"), name: ws),
                          rest: Array(s[8...]))
        }
        guard call.lower(8) == "computes", try guardStore({ try store.get("workspace", groupKey, ws) }) != nil else {
            throw AMLError(.notFound, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/\(ws)' under resource group '\(rg)' was not found.")
        }
        let wsKey = Self.workspaceKey(sub, rg, ws)
        if s.count == 9 {
            return Self.json(.ok, ["value": .array(try guardStore({ try store.list("compute", wsKey) }).map { materialize($0, base: call.base) })])
        }
        let name = s[9]
        if s.count == 11, call.method == .post, ["listkeys", "listnodes"].contains(call.lower(10)) {
            guard try guardStore({ try store.get("compute", wsKey, name) }) != nil else { throw computeNotFound(name) }
            return Self.json(.ok, call.lower(10) == "listkeys" ? ["computeType": "AmlCompute"] : ["nodes": [], "nextLink": nil])
        }
        guard s.count == 10 else { throw AMLError(.notFound, "NotFound", "No such ARM resource.") }
        return try compute(call, wsKey: wsKey, id: "/" + s[0..<10].joined(separator: "/"), name: name)
    }

    func computeNotFound(_ name: String) -> AMLError {
        AMLError(.notFound, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/computes/\(name)' was not found.")
    }

    /// A resource as clients see it: pending provisioning completed once its time has come, internals removed.
    func materialize(_ body: JSONValue, base: String) -> JSONValue {
        var b = body
        // The discovery URL follows the bound address (a workspace may have been seeded before it was known).
        if b.value(at: "properties.discoveryUrl") != nil {
            b = b.setting(path: "properties.discoveryUrl", .string(base + "/discovery"))
        }
        if let ready = b["_readyAt"]?.int, Double(ready) <= settings.now().timeIntervalSince1970 * 1000,
           let state = b.value(at: "properties.provisioningState")?.string, state == "Creating" || state == "Updating" {
            b = b.setting(path: "properties.provisioningState", "Succeeded")
        }
        return b.publicView
    }

    /// When a resource or operation started now is done (by the injected clock, so tests decide when time passes).
    var readyAt: Int { Int((settings.now().timeIntervalSince1970 + settings.provisioningDelay) * 1000) }

    /// Starts a long-running operation and returns its headers.
    /// - Parameter locationOnly: Only a `Location` header (the v2 spec's `ArmLroLocationHeader` operations: job cancel
    ///   and delete, endpoint delete), not `Azure-AsyncOperation`.
    func startOperation(target: String, base: String, locationOnly: Bool = false) throws(AMLError) -> [(String, String)] {
        let id = UUID().uuidString.lowercased()
        try guardStore { try store.put("operation", "", id, ["_readyAt": .number(Double(readyAt)), "target": .string(target),
                                                            "startTime": .string(Self.now())]) }
        let url = "\(base)/operations/\(id)?api-version=2019-11-01"
        if locationOnly { return [("Location", url + "&kind=location"), ("Retry-After", "1")] }
        return [("Azure-AsyncOperation", url), ("Location", url + "&kind=location"), ("Retry-After", "1")]
    }

    /// `GET operations/{id}`: Azure-AsyncOperation status, or (with kind=location) 202 until done, then 200.
    func operation(_ call: Call, id: String) throws(AMLError) -> Response {
        guard let op = try guardStore({ try store.get("operation", "", id) }) else { throw AMLError(.notFound, "NotFound", "Operation \(id) not found.") }
        let done = (op["_readyAt"]?.int ?? 0) <= Int(settings.now().timeIntervalSince1970 * 1000)
        if call.query["kind"] == "location" {
            return done ? Self.json(.ok, "{}") : Self.json(.accepted, "{}", headers: [("Retry-After", "1"), ("Location", "\(call.base)/operations/\(id)?api-version=2019-11-01&kind=location")])
        }
        var status: JSONValue = ["status": .string(done ? "Succeeded" : "InProgress"), "startTime": op["startTime"] ?? .null]
        if done { status = status.setting("endTime", .string(Self.now())) }
        // Without Retry-After a poller waits its default (azure-core: 30 s).
        return Self.json(.ok, status, headers: done ? [] : [("Retry-After", "1")])
    }

    func workspace(_ call: Call, sub: String, rg: String, name: String) throws(AMLError) -> Response {
        let groupKey = Self.groupKey(sub, rg)
        let id = "/subscriptions/\(sub)/resourceGroups/\(rg)/providers/Microsoft.MachineLearningServices/workspaces/\(name)"
        switch call.method {
        case .get:
            guard let w = try guardStore({ try store.get("workspace", groupKey, name) }) else {
                throw AMLError(.notFound, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/\(name)' under resource group '\(rg)' was not found.")
            }
            return Self.json(.ok, materialize(w, base: call.base))
        case .put:
            let body = try call.json()
            guard let location = body["location"]?.string, !location.isEmpty else { throw AMLError(.badRequest, "InvalidRequestContent", "The workspace needs a location.") }
            let existing = try guardStore({ try store.get("workspace", groupKey, name) })
            let w = Self.workspaceBody(id: id, name: name, location: location, tenant: settings.tenant, base: call.base,
                                       properties: body["properties"] ?? [:], existing: existing)
                .setting(path: "properties.provisioningState", existing == nil ? "Creating" : "Updating")
                .setting("_readyAt", .number(Double(readyAt)))
            try guardStore({ try store.put("workspace", groupKey, name, w) })
            return Self.json(existing == nil ? .accepted : .ok, materialize(w, base: call.base), headers: try startOperation(target: id, base: call.base))
        case .patch:
            guard let w = try guardStore({ try store.get("workspace", groupKey, name) }) else { throw AMLError.notFound("Workspace \(name)") }
            let body = try call.json()
            var updated = w
            if let tags = body["tags"] { updated = updated.setting("tags", tags) }
            for key in ["description", "friendlyName"] { if let v = body.value(at: "properties.\(key)") { updated = updated.setting(path: "properties.\(key)", v) } }
            try guardStore({ try store.put("workspace", groupKey, name, updated) })
            return Self.json(.ok, materialize(updated, base: call.base))
        case .delete:
            guard try guardStore({ try store.get("workspace", groupKey, name) }) != nil else { return Self.json(.noContent, "") }
            try guardStore {
                try guardStore({ try store.delete("workspace", groupKey, name) })
                try guardStore({ try store.deleteTree(scope: Self.workspaceKey(sub, rg, name)) })
            }
            return Self.json(.accepted, "", headers: try startOperation(target: id, base: call.base))
        default:
            throw AMLError(.methodNotAllowed, "MethodNotAllowed", "\(call.method) is not supported on a workspace.")
        }
    }

    static func workspaceBody(id: String, name: String, location: String, tenant: String, base: String,
                              properties: JSONValue, existing: JSONValue?) -> JSONValue {
        let workspaceID = existing?.value(at: "properties.workspaceId")?.string ?? UUID().uuidString.lowercased()
        let created = existing?.value(at: "properties.creationTime")?.string ?? now()
        return [
            "id": .string(id), "name": .string(name), "type": "Microsoft.MachineLearningServices/workspaces",
            "location": .string(location), "tags": existing?["tags"] ?? [:], "sku": ["name": "Basic", "tier": "Basic"],
            "identity": ["type": "SystemAssigned", "principalId": .string(UUID().uuidString.lowercased()), "tenantId": .string(tenant)],
            "properties": [
                "workspaceId": .string(workspaceID), "friendlyName": properties["friendlyName"] ?? .string(name),
                "description": properties["description"] ?? "", "creationTime": .string(created),
                "keyVault": properties["keyVault"] ?? .null, "applicationInsights": properties["applicationInsights"] ?? .null,
                "containerRegistry": properties["containerRegistry"] ?? .null, "storageAccount": properties["storageAccount"] ?? .null,
                "hbiWorkspace": false, "discoveryUrl": .string(base + "/discovery"), "provisioningState": "Succeeded",
            ],
        ]
    }

    func compute(_ call: Call, wsKey: String, id: String, name: String) throws(AMLError) -> Response {
        switch call.method {
        case .get:
            guard let c = try guardStore({ try store.get("compute", wsKey, name) }) else { throw computeNotFound(name) }
            return Self.json(.ok, withNodeCounts(materialize(c, base: call.base), wsKey: wsKey, name: name))
        case .put:
            let body = try call.json()
            let props = body["properties"] ?? [:]
            let type = props["computeType"]?.string ?? ""
            guard type == "AmlCompute" else {
                throw AMLError(.badRequest, "BadRequest", "computeType must be AmlCompute for aml-local (got \"\(type)\").")
            }
            let scale = props.value(at: "properties.scaleSettings") ?? [:]
            guard let maxNodes = scale["maxNodeCount"]?.int, maxNodes >= 0 else {
                throw AMLError(.badRequest, "BadRequest", "properties.properties.scaleSettings.maxNodeCount is required (an integer of 0 or more).")
            }
            let existing = try guardStore({ try store.get("compute", wsKey, name) })
            let c: JSONValue = [
                "id": .string(id), "name": .string(name), "type": "Microsoft.MachineLearningServices/workspaces/computes",
                "location": body["location"] ?? "local",
                "properties": [
                    "computeType": "AmlCompute", "provisioningState": existing == nil ? "Creating" : "Updating",
                    "description": props["description"] ?? .null, "createdOn": existing?.value(at: "properties.createdOn") ?? .string(Self.now()),
                    "modifiedOn": .string(Self.now()), "resourceId": .null, "provisioningErrors": nil, "isAttachedCompute": false,
                    // userAccountCredentials (top level in the article, nested in the spec) is accepted and never stored.
                    "properties": [
                        "vmSize": props.value(at: "properties.vmSize") ?? "Standard_D1",
                        "vmPriority": props.value(at: "properties.vmPriority") ?? "Dedicated",
                        "scaleSettings": ["maxNodeCount": .number(Double(maxNodes)), "minNodeCount": scale["minNodeCount"] ?? 0,
                                          "nodeIdleTimeBeforeScaleDown": scale["nodeIdleTimeBeforeScaleDown"] ?? "PT30M"],
                        "allocationState": "Steady",
                    ],
                ],
                "_readyAt": .number(Double(readyAt)),
            ]
            try guardStore({ try store.put("compute", wsKey, name, c) })
            executor.capacityChanged()
            return Self.json(existing == nil ? .created : .ok, withNodeCounts(c.publicView, wsKey: wsKey, name: name),
                             headers: try startOperation(target: id, base: call.base))
        case .patch:
            guard let c = try guardStore({ try store.get("compute", wsKey, name) }) else { throw computeNotFound(name) }
            let body = try call.json()
            guard let scale = body.value(at: "properties.scaleSettings") else {
                throw AMLError(.badRequest, "BadRequest", "PATCH takes {\"properties\":{\"scaleSettings\":{…}}}.")
            }
            var settingsValue = c.value(at: "properties.properties.scaleSettings") ?? [:]
            for (k, v) in scale.object { settingsValue = settingsValue.setting(k, v) }
            guard let maxNodes = settingsValue["maxNodeCount"]?.int, maxNodes >= 0,
                  (settingsValue["minNodeCount"]?.int ?? 0) <= maxNodes else {
                throw AMLError(.badRequest, "BadRequest", "scaleSettings needs 0 <= minNodeCount <= maxNodeCount.")
            }
            let updated = c.setting(path: "properties.properties.scaleSettings", settingsValue)
                .setting(path: "properties.provisioningState", "Updating").setting(path: "properties.modifiedOn", .string(Self.now()))
                .setting("_readyAt", .number(Double(readyAt)))
            try guardStore({ try store.put("compute", wsKey, name, updated) })
            executor.capacityChanged()
            return Self.json(.ok, withNodeCounts(updated.publicView, wsKey: wsKey, name: name), headers: try startOperation(target: id, base: call.base))
        case .delete:
            guard let action = call.query["underlyingresourceaction"], ["delete", "detach"].contains(action.lowercased()) else {
                throw AMLError(.badRequest, "BadRequest", "The underlyingResourceAction query parameter is required (Delete or Detach).")
            }
            guard try guardStore({ try store.delete("compute", wsKey, name) }) else { throw computeNotFound(name) }
            return Self.json(.accepted, "", headers: try startOperation(target: id, base: call.base))
        default:
            throw AMLError(.methodNotAllowed, "MethodNotAllowed", "\(call.method) is not supported on a compute.")
        }
    }

    /// Adds the live node counts (runs executing on the compute) to its read-only properties.
    func withNodeCounts(_ c: JSONValue, wsKey: String, name: String) -> JSONValue {
        let running = executor.running(on: wsKey + "/" + name.lowercased())
        return c.setting(path: "properties.properties.currentNodeCount", .number(Double(running)))
            .setting(path: "properties.properties.targetNodeCount", .number(Double(running)))
            .setting(path: "properties.properties.nodeStateCounts", ["idleNodeCount": 0, "runningNodeCount": .number(Double(running)),
                                                                     "preparingNodeCount": 0, "unusableNodeCount": 0,
                                                                     "leavingNodeCount": 0, "preemptedNodeCount": 0])
    }

    /// Runs a store operation, turning its failure into a 500 in the plane's envelope.
    func guardStore<T>(_ body: () throws -> T) throws(AMLError) -> T {
        do { return try body() } catch let e as AMLError { throw e } catch {
            logger.error("aml-local store: \(error)")
            throw AMLError(.internalServerError, "ServiceError", "The local store failed: \(error)")
        }
    }
}
