import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The files through which the processes that `cluster start` launched on this machine find
/// each other: the head's address, and one pid file per daemon.
///
/// The folder is `$SHOAL_SESSION_DIR`, or by default `$XDG_RUNTIME_DIR/shoal` (where the user
/// has a runtime folder) or `/tmp/shoal-<uid>`: one per user, mode 0700. A folder that another
/// user made (or a link in its place) is refused: whoever owns it could plant a head address
/// for this user's drivers to send their code to, or read their logs.
public struct Session: Sendable {
    /// The session folder.
    public let directory: String

    public init(directory: String? = nil) {
        self.directory = directory ?? ProcessInfo.processInfo.environment["SHOAL_SESSION_DIR"] ?? Self.defaultDirectory
    }

    /// `$XDG_RUNTIME_DIR/shoal` when that folder exists, else `/tmp/shoal-<uid>`.
    public static var defaultDirectory: String {
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty,
            FileManager.default.fileExists(atPath: runtime)
        {
            return runtime + "/shoal"
        }
        return "/tmp/shoal-\(geteuid())"
    }

    /// Makes `path` (and the folders above it that are missing) a folder of this user's, mode
    /// 0700; an existing one must be a real folder owned by this user, and loses any access
    /// others had to it.
    /// - Throws: `SessionError` for a folder of someone else's, a link or a file in its place.
    public static func makePrivate(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) != 0 {
            do {
                try FileManager.default.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw SessionError("cannot make the folder \(path): \(error.localizedDescription)")
            }
            guard lstat(path, &info) == 0 else { throw SessionError("cannot read the folder \(path) just made") }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SessionError("\(path) is not a folder (a link or a file is in its place): refusing it")
        }
        guard info.st_uid == geteuid() else {
            throw SessionError(
                "the folder \(path) belongs to uid \(info.st_uid), not to this user (uid \(geteuid())): refusing it, as another "
                    + "user could read or plant its files; remove it, or set SHOAL_SESSION_DIR to a folder of your own")
        }
        if info.st_mode & 0o077 != 0, chmod(path, 0o700) != 0 {
            throw SessionError("cannot make \(path) private (mode 0700): \(String(cString: strerror(errno)))")
        }
    }

    /// Whether the session folder is this user's own (a foreign one is never read).
    public var isTrusted: Bool {
        var info = stat()
        return lstat(directory, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR && info.st_uid == geteuid()
    }

    var headAddressFile: String { directory + "/head_address" }
    var processDirectory: String { directory + "/processes" }
    /// Where daemons started in the background write their logs.
    public var logDirectory: String { directory + "/logs" }

    /// Creates the session's folders, private to this user (or checks that they are).
    /// - Throws: `SessionError` for a session folder of someone else's.
    public func prepare() throws {
        for path in [directory, processDirectory, logDirectory] { try Self.makePrivate(path) }
    }

    /// The running head's address, if the session has one.
    public func headAddress() -> String? {
        guard isTrusted, let text = try? String(contentsOfFile: headAddressFile, encoding: .utf8) else { return nil }
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

/// A session folder that cannot be used, and why.
public struct SessionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
