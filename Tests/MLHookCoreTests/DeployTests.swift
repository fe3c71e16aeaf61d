import Foundation
import MLHookCore
import TestSupport
import Testing
import Yams

/// deploy/ stays true: the shipped configuration parses, the Deployment has its probes, limits and non-root user,
/// the systemd unit verifies, and the run-book documents exactly the metrics the code exports.
@Suite struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

    func text(_ path: String) throws -> String { try String(contentsOfFile: Self.root + "/" + path, encoding: .utf8) }

    @Test func theConfigMapHoldsAValidConfiguration() throws {
        let map = try #require(try Yams.load(yaml: try text("deploy/kubernetes/configmap.yaml")) as? [String: Any])
        let yaml = try #require((map["data"] as? [String: Any])?["mlhook.yaml"] as? String)
        let config = try MLHookConfig.parse(yaml: yaml, file: "configmap.yaml").config
        #expect(config.server.host == "0.0.0.0" && config.server.port == 8080 && config.admin.token != nil)
        #expect(config.azureml.mode == .cloud && config.log.format == .json)
        // Every environment variable the configuration names is a key of the example Secret.
        let secret = try #require(try Yams.load(yaml: try text("deploy/kubernetes/secret.yaml.example")) as? [String: Any])
        let keys = Set(((secret["stringData"] as? [String: Any]) ?? [:]).keys)
        let named = Set(yaml.matches(of: /env: ([A-Z_]+)/).map { String($0.1) })
        #expect(named.isSubset(of: keys), "missing from the Secret: \(named.subtracting(keys))")
    }

    @Test func theDeploymentProbesLimitsAndRunsAsNonRoot() throws {
        let docs = try Yams.load_all(yaml: try text("deploy/kubernetes/deployment.yaml")).compactMap { $0 as? [String: Any] }
        let deployment = try #require(docs.first { $0["kind"] as? String == "Deployment" })
        let spec = try #require((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])["spec"] as? [String: Any]
        let pod = try #require(spec)
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        func path(_ probe: String) -> String? { ((container[probe] as? [String: Any])?["httpGet"] as? [String: Any])?["path"] as? String }
        #expect(path("livenessProbe") == "/healthz" && path("readinessProbe") == "/readyz")
        let limits = ((container["resources"] as? [String: Any])?["limits"] as? [String: Any]) ?? [:]
        #expect(limits["cpu"] != nil && limits["memory"] != nil)
        #expect((pod["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
        #expect((container["securityContext"] as? [String: Any])?["readOnlyRootFilesystem"] as? Bool == true)
        // Kubernetes waits longer than mlhook's own shutdown bound.
        #expect((pod["terminationGracePeriodSeconds"] as? Int ?? 0) > ServerConfig().shutdownGraceSeconds)
        #expect(((deployment["spec"] as? [String: Any])?["strategy"] as? [String: Any])?["type"] as? String == "Recreate",
                "one SQLite writer: never two pods at once")
    }

    /// `kubectl apply -f DIR` (as deploy/README.md says to) applies every .yaml, .yml and .json there: none may be a
    /// Secret, or the example's placeholders would replace the real one (before: postgres/secret.example.yaml).
    @Test func applyingAManifestFolderNeverAppliesASecret() throws {
        for folder in ["deploy/kubernetes", "deploy/kubernetes/postgres"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: Self.root + "/" + folder)
            where [".yaml", ".yml", ".json"].contains(where: { name.hasSuffix($0) }) {
                let kinds = try Yams.load_all(yaml: try text(folder + "/" + name)).compactMap { ($0 as? [String: Any])?["kind"] as? String }
                #expect(!kinds.contains("Secret"), "\(folder)/\(name) would be applied with the folder")
            }
        }
        #expect(try text("deploy/README.md").contains("kubectl apply -f deploy/kubernetes/postgres/"))
    }

    @Test func thePostgresVariantRunsSeveralReplicasWithoutAVolume() throws {
        let map = try #require(try Yams.load(yaml: try text("deploy/kubernetes/postgres/configmap.yaml")) as? [String: Any])
        let yaml = try #require((map["data"] as? [String: Any])?["mlhook.yaml"] as? String)
        let config = try MLHookConfig.parse(yaml: yaml, file: "postgres/configmap.yaml").config
        guard case .postgres(let postgres) = config.store.backend else { Issue.record("not the PostgreSQL store"); return }
        #expect(postgres.url == .env("MLHOOK_DATABASE_URL") && config.azureml.mode == .cloud, "the embedded aml-local is refused with it")
        let secret = try #require(try Yams.load(yaml: try text("deploy/kubernetes/postgres/secret.yaml.example")) as? [String: Any])
        let keys = Set(((secret["stringData"] as? [String: Any]) ?? [:]).keys)
        let named = Set(yaml.matches(of: /env: ([A-Z_]+)/).map { String($0.1) })
        #expect(named.isSubset(of: keys), "missing from the Secret: \(named.subtracting(keys))")
        let example = (secret["stringData"] as? [String: Any])?["MLHOOK_DATABASE_URL"] as? String
        #expect(example.flatMap { try? PostgresURL($0) } != nil, "the example URL parses")

        let docs = try Yams.load_all(yaml: try text("deploy/kubernetes/postgres/deployment.yaml")).compactMap { $0 as? [String: Any] }
        let deployment = try #require(docs.first { $0["kind"] as? String == "Deployment" })
        let spec = try #require(deployment["spec"] as? [String: Any])
        #expect((spec["replicas"] as? Int ?? 0) >= 2)
        #expect((spec["strategy"] as? [String: Any])?["type"] as? String == "RollingUpdate")
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        let volumes = (pod["volumes"] as? [[String: Any]]) ?? []
        #expect(!volumes.contains { $0["persistentVolumeClaim"] != nil }, "no PVC: the state is in the database")
        #expect(!docs.contains { $0["kind"] as? String == "PersistentVolumeClaim" })
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        let env = (container["env"] as? [[String: Any]]) ?? []
        #expect(!env.contains { $0["name"] as? String == "MLHOOK_STORE_PATH" })
        let budget = try #require(docs.first { $0["kind"] as? String == "PodDisruptionBudget" })
        #expect(((budget["spec"] as? [String: Any])?["minAvailable"] as? Int ?? 0) >= 1)
    }

    @Test func theRunBookDocumentsExactlyTheExportedMetrics() throws {
        let source = try text("Sources/MLHookServer/Operations/Metrics.swift")
        let exported = Set(source.matches(of: /describe\("([a-z_]+)", "([a-z]*)"/).map { m in
            "mlhook_" + String(m.1) + (m.2.isEmpty ? "" : "_" + String(m.2))
        })
        #expect(exported.count >= 14)
        let book = try text("deploy/README.md")
        let documented = Set(book.matches(of: /\| `(mlhook_[a-z_]+)` \|/).map { String($0.1) })
        #expect(exported == documented, "exported but undocumented: \(exported.subtracting(documented)); documented but gone: \(documented.subtracting(exported))")
    }

    @Test func theSystemdUnitVerifies() async throws {
        let analyze = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: analyze) else { return }  // not every machine has systemd's tools
        // The unit as installed, with ExecStart pointed at a binary that exists here.
        let unit = try text("deploy/systemd/mlhook.service").replacingOccurrences(of: "/usr/local/bin/mlhook", with: "/bin/true")
        let dir = NSTemporaryDirectory() + "mlhook-unit-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try unit.write(toFile: dir + "/mlhook.service", atomically: true, encoding: .utf8)
        let (status, out) = try await runProcessAsync(analyze, ["verify", dir + "/mlhook.service"])
        #expect(status == 0 && !out.contains("mlhook.service:"), "\(out)")
        for hardening in ["NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=", "DynamicUser=yes", "SystemCallFilter=@system-service"] {
            #expect(unit.contains(hardening))
        }
    }

    /// What bubblewrap (and the run spawner) needs is not taken away by the unit, so `confinement: required` can
    /// hold under systemd: before, RestrictNamespaces=yes forbade every namespace, ~@privileged refused pivot_root
    /// and setuid, @mount was not allowed, ~@resources refused setrlimit, and AF_NETLINK (a run's loopback) was not
    /// an allowed family.
    @Test func theSystemdUnitLetsBubblewrapBuildItsSandbox() async throws {
        let analyze = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: analyze) else { return }  // not every machine has systemd's tools
        let unit = try text("deploy/systemd/mlhook.service")
        func values(_ key: String) -> [String] {
            unit.split(separator: "\n").filter { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        let namespaces = Set(values("RestrictNamespaces").flatMap { $0.split(separator: " ").map(String.init) })
        #expect(namespaces.isSuperset(of: ["user", "mnt", "pid", "ipc", "uts", "net"]) && !namespaces.contains("yes"), "\(namespaces)")
        #expect(values("RestrictAddressFamilies").joined(separator: " ").contains("AF_NETLINK"))
        // The system calls a filter line names, its @groups expanded by systemd itself.
        var groups: [String: Set<String>] = [:]
        func expand(_ item: String) async throws -> Set<String> {
            guard item.hasPrefix("@") else { return [item] }
            if let known = groups[item] { return known }
            let (_, out) = try await runProcessAsync(analyze, ["syscall-filter", item])
            var calls: Set<String> = []
            for line in out.split(separator: "\n").dropFirst() {
                let word = line.trimmingCharacters(in: .whitespaces)
                guard !word.isEmpty, !word.hasPrefix("#") else { continue }
                calls.formUnion(try await expand(word))
            }
            groups[item] = calls
            return calls
        }
        var allowed: Set<String> = [], denied: Set<String> = []
        for line in values("SystemCallFilter") {
            let deny = line.hasPrefix("~")
            for item in line.dropFirst(deny ? 1 : 0).split(separator: " ") {
                let calls = try await expand(String(item))
                if deny { denied.formUnion(calls) } else { allowed.formUnion(calls) }
            }
        }
        let effective = allowed.subtracting(denied)
        #expect(effective.count > 100, "systemd-analyze listed the groups")
        for call in ["mount", "umount2", "pivot_root", "unshare", "clone", "setuid", "setgid", "setresuid", "setgroups", "capset", "prctl",
                     "setrlimit", "prlimit64", "setpgid"] {
            #expect(effective.contains(call), "the unit refuses \(call), which bubblewrap or the run spawner needs")
        }
        for call in ["init_module", "reboot", "swapon", "kexec_load", "ptrace", "settimeofday"] {
            #expect(!effective.contains(call), "the unit allows \(call)")
        }
    }
}
