import Foundation

/// The Azure ML run (v1) or command job (v2) a job started: what the run watcher follows, and what every report
/// names (callbacks, the Slack message, the pending GitHub status, `/ui`, `mlhook send --wait`).
///
/// Stored in the job's result under `run`, next to the flat keys the callback body has always carried
/// (`run_id` or `job_name`, `experiment`); `init(result:)` is the one place that reads it back.
public struct RunReference: Sendable, Equatable, Codable {
    public enum API: String, Sendable, Codable {
        case v1, v2
    }

    public var api: API
    /// The experiment the run or job belongs to.
    public var experiment: String
    /// v1: the run id; v2: the job name.
    public var id: String
    /// The configured workspace (`azureml.workspaces`) it runs in; nil for the default one.
    public var workspace: String?
    /// Where a person looks at it (Azure ML studio, or aml-local's page), once known.
    public var studioURL: String?

    enum CodingKeys: String, CodingKey {
        case api, experiment, id, workspace
        case studioURL = "studio_url"
    }

    public init(api: API, experiment: String, id: String, workspace: String? = nil, studioURL: String? = nil) {
        self.api = api
        self.experiment = experiment
        self.id = id
        self.workspace = workspace
        self.studioURL = studioURL
    }

    /// The run a job's result names: its `run` object, or, for results stored before it existed, the flat keys
    /// (`api: v2` with `job_name`; else `experiment` with `run_id`). Nil when the result names no run.
    public init?(result: JSONValue?) {
        guard let result else { return nil }
        if let run = result["run"], run != .null,
           let decoded = try? JSONDecoder().decode(RunReference.self, from: Data(run.text.utf8)) {
            self = decoded
            return
        }
        let workspace = result["workspace"]?.string
        if result["api"]?.string == "v2", let name = result["job_name"]?.string {
            self.init(api: .v2, experiment: result["experiment"]?.string ?? "", id: name, workspace: workspace,
                      studioURL: result["studio_url"]?.string)
        } else if let experiment = result["experiment"]?.string, let id = result["run_id"]?.string {
            self.init(api: .v1, experiment: experiment, id: id, workspace: workspace)
        } else {
            return nil
        }
    }

    /// The same, from a job's stored result text.
    public init?(resultText: String?) {
        self.init(result: resultText.flatMap { JSONValue(json: Array($0.utf8)) })
    }

    /// As stored in a result.
    public var json: JSONValue {
        var j: JSONValue = ["api": .string(api.rawValue), "experiment": .string(experiment), "id": .string(id)]
        if let workspace { j = j.setting("workspace", .string(workspace)) }
        if let studioURL { j = j.setting("studio_url", .string(studioURL)) }
        return j
    }

    /// "run X" (v1) or "job X" (v2), as messages name it.
    public var label: String { "\(api == .v1 ? "run" : "job") \(id)" }
}
