import Foundation
import GRDB
import Logging

/// Copies the write-ahead log into the database file on its own thread and connection.
///
/// SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, so one delivery in every
/// few hundred waited for a thousand pages to be copied and the database file to be fsynced: the p99 of
/// bench/ingest.sh dropped from about 23 ms to 13 ms without it.
///
/// Passive checkpoints never block the writer, but under continuous commits they are always one commit
/// behind, so the log would never restart from its beginning and would grow without bound. Once it passes
/// `restartWALBytes` and the passive passes have nearly caught up, one RESTART checkpoint copies the last
/// few frames, which holds the writer back for about a millisecond, and the next commit reuses the log from
/// its start. If the log still reaches `maxWALBytes`, a TRUNCATE bounds it whatever the stall.
final class WALCheckpointer: @unchecked Sendable {
    // @unchecked Sendable is safe: `stopped` is only touched with `condition` locked; `queue` is a GRDB
    // DatabaseQueue (serialized internally) used only from the checkpointer's own thread.
    private let condition = NSCondition()
    private var stopped = false
    private var failureCount = 0
    /// Checkpoints that failed so far (for tests and diagnostics).
    var failures: Int { condition.lock(); defer { condition.unlock() }; return failureCount }
    private let queue: DatabaseQueue
    private let interval: TimeInterval
    private let restartWALFrames: Int
    private let maxWALFrames: Int
    /// A RESTART is attempted only when at most this many frames remain to copy.
    private let restartBacklogFrames = 256
    private let logger: Logger

    /// Opens a second connection to `path` and starts the thread.
    init(path: String, pageSize: Int, interval: TimeInterval = 0.05, restartWALBytes: Int = 16 << 20,
         maxWALBytes: Int = 512 << 20, busyTimeout: TimeInterval = 5, logger: Logger) throws {
        var config = GRDB.Configuration()
        config.busyMode = .timeout(busyTimeout)
        queue = try DatabaseQueue(path: path, configuration: config)
        self.interval = interval
        self.restartWALFrames = restartWALBytes / max(pageSize, 512)
        self.maxWALFrames = maxWALBytes / max(pageSize, 512)
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "mlhook-store-checkpoint"
        thread.start()
    }

    /// Stops the thread after its current checkpoint.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        var backlog = false
        // A checkpoint that cannot finish because a reader (another process, the CLI) holds an old snapshot is
        // expected and retried: it is reported once it has kept failing for a minute, then every ten, not at
        // every 50 ms pass.
        var failingSince: Date?
        var reported: Date?
        while true {
            condition.lock()
            if !stopped && !backlog { _ = condition.wait(until: Date(timeIntervalSinceNow: interval)) }
            let stop = stopped
            condition.unlock()
            if stop { return }
            do {
                let (frames, copied) = try queue.inDatabase { try $0.checkpoint(.passive) }
                backlog = copied < frames
                if frames > maxWALFrames {
                    try queue.inDatabase { _ = try $0.checkpoint(.truncate) }
                    logger.notice("store: write-ahead log reached \(frames) frames; truncated it")
                    backlog = false
                } else if frames > restartWALFrames && frames - copied <= restartBacklogFrames {
                    try queue.inDatabase { _ = try $0.checkpoint(.restart) }
                    backlog = false
                }
                if let since = failingSince, reported != nil {
                    logger.notice("store: checkpoints succeed again after \(Int(Date().timeIntervalSince(since))) s")
                }
                failingSince = nil
                reported = nil
            } catch {
                backlog = false
                condition.lock()
                failureCount += 1
                condition.unlock()
                let now = Date()
                let since = failingSince ?? now
                failingSince = since
                if now.timeIntervalSince(since) >= 60, reported.map({ now.timeIntervalSince($0) >= 600 }) ?? true {
                    logger.warning("store: checkpoints have failed for \(Int(now.timeIntervalSince(since))) s (will retry): \(error)")
                    reported = now
                } else {
                    logger.debug("store: checkpoint failed (will retry): \(error)")
                }
            }
        }
    }
}
