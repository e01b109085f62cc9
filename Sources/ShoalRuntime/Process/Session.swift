import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The files through which the processes that `cluster start` launched on this machine find
/// each other: the head's address, and one pid file per daemon.
///
/// The folder is `$SHOAL_SESSION_DIR`, or `/tmp/shoal` by default.
public struct Session: Sendable {
    /// The session folder.
    public let directory: String

    public init(directory: String? = nil) {
        self.directory = directory ?? ProcessInfo.processInfo.environment["SHOAL_SESSION_DIR"] ?? "/tmp/shoal"
    }

    var headAddressFile: String { directory + "/head_address" }
    var processDirectory: String { directory + "/processes" }
    /// Where daemons started in the background write their logs.
    public var logDirectory: String { directory + "/logs" }

    /// Creates the session's folders.
    public func prepare() throws {
        for path in [directory, processDirectory, logDirectory] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
    }

    /// The running head's address, if the session has one.
    public func headAddress() -> String? {
        guard let text = try? String(contentsOfFile: headAddressFile, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n")
        guard lines.count >= 2, let pid = Int32(lines[1]), ChildProcess.isAlive(pid) else { return nil }
        return String(lines[0])
    }

    /// The head to reach: `given`, else `SHOAL_ADDRESS`, else this session's running head.
    public func headAddress(given: String?) -> String? {
        given ?? ProcessInfo.processInfo.environment["SHOAL_ADDRESS"] ?? headAddress()
    }

    /// Records the head's address (with the head's pid, to spot a stale file).
    public func writeHeadAddress(_ address: String) throws {
        try "\(address)\n\(getpid())\n".write(toFile: headAddressFile, atomically: true, encoding: .utf8)
    }

    /// Records this process as a daemon of the session: its role, its start time (clock ticks
    /// since boot, from /proc) and its executable, so that a later `cluster stop` can tell it
    /// from an unrelated process that got the same pid.
    public func registerProcess(role: String) throws {
        try prepare()
        let pid = getpid()
        let started = Self.startTime(of: pid).map(String.init) ?? ""
        let executable = Self.executable(of: pid) ?? ""
        try "\(role)\n\(started)\n\(executable)\n".write(
            toFile: processDirectory + "/\(pid)", atomically: true, encoding: .utf8)
    }

    /// A daemon recorded in the session.
    public struct ProcessRecord: Sendable, Equatable {
        public var pid: pid_t
        public var role: String
        /// Clock ticks since boot when it started (nil in records written before they held it).
        public var startTime: UInt64?
        public var executable: String?

        /// Whether the recorded process still runs: the pid is alive, started at the recorded
        /// time and runs the recorded executable. Otherwise, why not.
        public func verify() -> (running: Bool, reason: String) {
            guard ChildProcess.isAlive(pid) else { return (false, "no process has pid \(pid) any more") }
            guard let startTime else {
                // A record from before start times were kept: the executable's name is all there is.
                let name = Session.executable(of: pid).map { ($0 as NSString).lastPathComponent }
                return name == "cluster"
                    ? (true, "") : (false, "pid \(pid) runs \(name ?? "an unknown program"), not cluster")
            }
            guard let now = Session.startTime(of: pid), now == startTime else {
                return (false, "pid \(pid) now belongs to another process (started at another time)")
            }
            if let executable, !executable.isEmpty, let current = Session.executable(of: pid), current != executable {
                return (false, "pid \(pid) now runs \(current), not \(executable)")
            }
            return (true, "")
        }
    }

    /// When `pid` started, in clock ticks since boot (/proc/PID/stat, field 22).
    public static func startTime(of pid: pid_t) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // Fields after the command: state is field 3, so the start time (22) is the 20th.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// The executable `pid` runs (/proc/PID/exe), when this process may read it; a binary
    /// replaced since it started (a rebuild, an upgrade) is still named by its path.
    public static func executable(of pid: pid_t) -> String? {
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else { return nil }
        return path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }

    /// Forgets this process.
    public func unregisterProcess() {
        try? FileManager.default.removeItem(atPath: processDirectory + "/\(getpid())")
    }

    /// The daemons recorded in this session.
    public func processes() -> [ProcessRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: processDirectory)) ?? []
        return names.compactMap { name in
            guard let pid = pid_t(name) else { return nil }
            let text = (try? String(contentsOfFile: processDirectory + "/" + name, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            return ProcessRecord(
                pid: pid, role: lines.first ?? "", startTime: lines.count > 1 ? UInt64(lines[1]) : nil,
                executable: lines.count > 2 && !lines[2].isEmpty ? lines[2] : nil)
        }
    }

    /// Forgets a recorded process.
    public func forget(pid: pid_t) {
        try? FileManager.default.removeItem(atPath: processDirectory + "/\(pid)")
    }

    /// Removes the head address file.
    public func clearHeadAddress() {
        try? FileManager.default.removeItem(atPath: headAddressFile)
    }
}
