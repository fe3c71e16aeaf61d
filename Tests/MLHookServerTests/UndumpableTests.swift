import ChildProcess
import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `mlhook serve` makes itself undumpable before it reads a secret: its /proc entries (environ: webhook secrets,
/// the admin token, the Azure client secret) then belong to root, so a script it runs as the same user cannot read
/// them. Checked on the real binary run as an unprivileged user (setpriv), where the owner shows it.
@Suite struct UndumpableTests {
    @Test func theServersProcEntriesAreNotReadableByItsOwnUser() async throws {
        try #require(getuid() == 0, "switching to an unprivileged user needs root (CI and the dev machines run as root)")
        let dir = try TemporaryDirectory("mlhook-undumpable")
        defer { dir.remove() }
        chmod(dir.path, 0o777)
        let p = try ChildProcess.spawn("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", try ServerProcess.binary(), "serve"],
                                       environment: ["MLHOOK_LISTEN": "127.0.0.1:0", "MLHOOK_NO_SAMPLE": "1", "PATH": "/usr/bin:/bin", "MLHOOK_ADMIN_SECRET_PROBE": "x"],
                                       directory: dir.path)
        defer { p.signal(SIGKILL) }
        // Once it listens (its secret file exists), it has made itself undumpable.
        let deadline = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: dir.file(".mlhook/secrets/github")), ContinuousClock.now < deadline, p.isRunning {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(p.isRunning, "mlhook serve runs as nobody")
        var st = stat()
        #expect(stat("/proc/\(p.pid)/environ", &st) == 0)
        #expect(st.st_uid == 0, "owned by root, not by the server's user (65534): not dumpable")
        var status = stat()
        #expect(stat("/proc/\(p.pid)", &status) == 0 && status.st_uid == 65534, "the process itself runs as nobody")
    }
}
