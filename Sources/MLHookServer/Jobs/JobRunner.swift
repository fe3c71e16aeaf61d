import AzureML
import Foundation
import Logging
import MLHookCore
import ServiceLifecycle
import Store

/// The job engine as one service: a `WorkerPool` of `workers` loops and the `RunWatcher`, sharing the job
/// queue, the configuration in force and one Azure ML client.
public struct JobRunner: Service {
    let pool: WorkerPool
    let watcher: RunWatcher

    /// - Parameters:
    ///   - store: The job queue (with the inbox, for the events jobs read).
    ///   - live: The configuration in force (rules, their secrets and callbacks).
    ///   - client: The Azure ML client; called once per attempt, so it should return one instance for the life
    ///     of the process (local mode builds it when the embedded server is bound).
    ///   - workers: Jobs performed at once.
    ///   - lease: Seconds a claimed job is held before another worker may take it.
    ///   - baseBackoff: A retry waits a random 0…base·2^(attempt-1) seconds, …
    ///   - maxBackoff: … at most this long.
    ///   - git: The git cache `start_run` fetches commits into.
    ///   - now: The clock stamps, retries and callbacks use.
    public init(store: any JobQueue & Inbox, live: LiveConfig, client: @escaping @Sendable () async throws -> any AzureMLClient,
                logger: Logger, workers: Int = 4, lease: TimeInterval = 300, baseBackoff: TimeInterval = 2, maxBackoff: TimeInterval = 600,
                git: GitSource? = nil, now: @escaping @Sendable () -> Date = { Date() }, metrics: MLHookMetrics = MLHookMetrics(),
                workspaces: WorkspaceClients = WorkspaceClients()) {
        pool = WorkerPool(queue: store, live: live, client: client, workspaces: workspaces, logger: logger, workers: workers, lease: lease,
                          baseBackoff: baseBackoff, maxBackoff: maxBackoff, now: now, git: git, metrics: metrics)
        watcher = RunWatcher(queue: store, live: live, client: client, workspaces: workspaces, logger: logger, now: now, metrics: metrics)
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await pool.run() }
            group.addTask { await watcher.run() }
        }
    }

    /// Claims and runs one job. - Returns: whether there was one.
    public func runOne() async throws -> Bool { try await pool.runOne() }

    /// Polls every watching job's run once. - Returns: how many jobs finished.
    public func watchOne() async throws -> Int { try await watcher.watchOne() }
}
