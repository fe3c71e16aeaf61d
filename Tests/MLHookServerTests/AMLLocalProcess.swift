import Foundation
import MLHookCore
import TestSupport
import Testing

/// `mlhook aml-local` as a separate process, standing in for the Azure cloud, with the credentials it wrote.
struct AMLLocalProcess {
    let process: ServerProcess
    let credentialsFile: String
    let credentials: JSONValue

    /// Starts it with its state in `directory/aml` and waits for its credentials.json.
    static func start(in dir: TemporaryDirectory) async throws -> AMLLocalProcess {
        let process = try await ServerProcess(arguments: ["aml-local", "--port", "0", "--data-dir", dir.file("aml")], environment: [:], directory: dir.path)
        let file = dir.file("aml/credentials.json")
        guard try await eventually(timeout: .seconds(30), { FileManager.default.fileExists(atPath: file) }) else {
            process.signal(SIGTERM)
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: file])
        }
        let credentials = try #require(JSONValue(json: [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))))
        return AMLLocalProcess(process: process, credentialsFile: file, credentials: credentials)
    }

    func credential(_ key: String) -> String { credentials[key]?.string ?? "" }

    /// An `azureml:` block in cloud mode for this server, its client secret read from `secretEnv`; `via` puts a
    /// proxy in front of every call (AAD, ARM and the data plane).
    func cloudYAML(secretEnv: String, via proxy: String? = nil) -> String {
        let c = credential
        let base = proxy ?? c("base_url")
        return """
            azureml:
              mode: cloud
              cloud: { tenant_id: "\(c("tenant_id"))", client_id: "\(c("client_id"))", client_secret: { env: \(secretEnv) },
                       subscription_id: "\(c("subscription_id"))", resource_group: "\(c("resource_group"))", workspace: "\(c("workspace"))",
                       authority_url: "\(base)", arm_url: "\(base)"\(proxy.map { ", data_plane_url: \"\($0)\"" } ?? "") }
            """
    }
}

/// A real git repository in `dir/repo` whose `train/train.py` is each of `scripts` in turn, one commit each. Built on
/// a thread of its own: the git commands wait on child processes, which must not hold the concurrency pool's
/// threads (on 2 cores, that stalls every other test).
/// - Returns: The repository's path and the commits, oldest first.
func trainingRepository(in dir: TemporaryDirectory, scripts: [String]) async throws -> (path: String, commits: [String]) {
    let repo = dir.file("repo")
    try FileManager.default.createDirectory(atPath: repo + "/train", withIntermediateDirectories: true)
    let git = PushToRunTests()
    _ = try await git.git(["init", "-q", "-b", "main"], in: repo)
    var commits: [String] = []
    for (i, script) in scripts.enumerated() {
        try script.write(toFile: repo + "/train/train.py", atomically: true, encoding: .utf8)
        _ = try await git.git(["add", "."], in: repo)
        _ = try await git.git(["-c", "user.email=t@x", "-c", "user.name=T", "commit", "-q", "-m", "commit \(i)"], in: repo)
        commits.append(try await git.git(["rev-parse", "HEAD"], in: repo))
    }
    return (repo, commits)
}
