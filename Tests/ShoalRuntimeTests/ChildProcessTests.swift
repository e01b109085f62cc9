import Foundation
import Shoal
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ChildProcessTests {
    /// A child that exited but is not reaped yet (a zombie) counts as gone: the checks that a
    /// driver or daemon did not outlive its head rely on it.
    @Test func anExitedChildNotYetReapedIsNotAlive() throws {
        let pid = try ChildProcess.spawn("/bin/sh", arguments: ["-c", "exit 3"], environment: [:])
        let deadline = ContinuousClock.now + .seconds(10)
        while ChildProcess.isAlive(pid) && ContinuousClock.now < deadline { usleep(5000) }
        #expect(!ChildProcess.isAlive(pid))
        #expect(kill(pid, 0) == 0, "still there to be reaped")
        #expect(ChildProcess.waitForExit(of: pid).code == 3)

        let sleeper = try ChildProcess.spawn("/bin/sleep", arguments: ["30"], environment: [:])
        #expect(ChildProcess.isAlive(sleeper))
        kill(sleeper, SIGKILL)
        _ = ChildProcess.waitForExit(of: sleeper)
        #expect(!ChildProcess.isAlive(sleeper))
    }
}
