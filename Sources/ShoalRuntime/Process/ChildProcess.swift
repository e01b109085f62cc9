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
    public static func spawn(
        _ path: String, arguments: [String], environment: [String: String], logPath: String? = nil,
        newSession: Bool = false
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let logPath {
            posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
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

    /// Reaps one exited child without waiting.
    /// - Returns: its pid and a description of how it ended, or nil when none has exited.
    public static func reapAny() -> (pid: pid_t, reason: String)? {
        var status: Int32 = 0
        let pid = waitpid(-1, &status, WNOHANG)
        guard pid > 0 else { return nil }
        return (pid, describe(status))
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

    /// Whether a process with this pid exists.
    public static func isAlive(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
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
