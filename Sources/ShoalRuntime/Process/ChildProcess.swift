import CPosix
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Starting and reaping child processes with posix_spawn.
public enum ChildProcess {
    /// Starts `path` with `arguments`.
    /// - Parameters:
    ///   - environment: the child's whole environment.
    ///   - logPath: a file that receives the child's stdout and stderr (appended); nil keeps ours.
    ///   - newSession: detach into a new session, so the child outlives our terminal.
    /// - Returns: the child's pid.
    /// - Throws: `ClusterError.connectionFailed` with the errno when the spawn fails.
    ///   - errorPath: a separate file for stderr (appended), when `logPath` is for stdout alone.
    ///   - workingDirectory: the child's current folder (ours when nil).
    ///   - outputDescriptor: a descriptor (a pipe's write end) that receives stdout, and stderr
    ///     too unless `errorPath` is given, instead of `logPath`.
    public static func spawn(
        _ path: String, arguments: [String], environment: [String: String], logPath: String? = nil,
        errorPath: String? = nil, workingDirectory: String? = nil, newSession: Bool = false,
        outputDescriptor: Int32? = nil
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let outputDescriptor {
            posix_spawn_file_actions_adddup2(&actions, outputDescriptor, 1)
            if let errorPath {
                posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            } else {
                posix_spawn_file_actions_adddup2(&actions, outputDescriptor, 2)
            }
        } else if let logPath {
            posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            if let errorPath {
                posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            } else {
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }
        }
        if let workingDirectory {
            posix_spawn_file_actions_addchdir_np(&actions, workingDirectory)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        // glibc's POSIX_SPAWN_SETSID (0x80) is hidden behind _GNU_SOURCE in the C headers.
        if newSession { flags |= 0x80 }
        posix_spawnattr_setflags(&attributes, flags)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw ClusterError.connectionFailed("cannot start '\(path)': \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// A pipe whose ends are closed on exec (so children spawned meanwhile by other threads do
    /// not inherit them; `spawn(outputDescriptor:)` gives its child its own copy).
    /// - Throws: `ClusterError.connectionFailed` with the errno.
    public static func pipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe2(&ends, O_CLOEXEC) == 0 else {
            throw ClusterError.connectionFailed("cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        return (ends[0], ends[1])
    }

    /// Waits up to `timeout` for `pid` to exit and reaps it.
    /// - Returns: how it ended, or nil if it still runs.
    public static func wait(for pid: pid_t, timeout: Duration) -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { return describe(status) }
            if result < 0 { return isAlive(pid) ? nil : "gone" }
            if ContinuousClock.now >= deadline { return nil }
            usleep(10_000)
        }
    }

    /// Whether a process with this pid exists and has not exited (a zombie has: it only waits
    /// for its parent, init for an orphan, to reap it).
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // /proc files report no size: read what comes. The state follows the command's ")".
        let descriptor = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return true }
        defer { Glibc.close(descriptor) }
        var stat = [UInt8](repeating: 0, count: 1024)
        let count = stat.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0, let close = stat[0..<count].lastIndex(of: UInt8(ascii: ")")), close + 2 < count else { return true }
        let state = stat[close + 2]
        return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
    }

    /// Waits, blocking the calling thread, until `pid` (our child) exits, and reaps it.
    /// - Returns: its exit code (128 + the signal when a signal ended it) and a description.
    public static func waitForExit(of pid: pid_t) -> (code: Int32, reason: String) {
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, 0)
            if result == pid { break }
            if result < 0 && errno != EINTR { return (-1, "could not be waited for: \(String(cString: strerror(errno)))") }
        }
        return (exitCode(status), describe(status))
    }

    /// A `waitpid` status as a shell's exit code: the status, or 128 + the signal that ended it.
    public static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Reaps `pid` if it has exited, without waiting.
    /// - Returns: how it ended, or nil while it runs.
    public static func reap(_ pid: pid_t) -> String? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { return describe(status) }
        if result < 0 && errno == ECHILD { return isAlive(pid) ? nil : "gone" }
        return nil
    }

    static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with status \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)"
    }

    /// The path of the running executable.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
