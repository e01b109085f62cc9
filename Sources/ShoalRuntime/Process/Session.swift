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

    /// Records the head's address (with the head's pid, to spot a stale file).
    public func writeHeadAddress(_ address: String) throws {
        try "\(address)\n\(getpid())\n".write(toFile: headAddressFile, atomically: true, encoding: .utf8)
    }

    /// Records this process as a daemon of the session.
    public func registerProcess(role: String) throws {
        try prepare()
        try "\(role)\n".write(toFile: processDirectory + "/\(getpid())", atomically: true, encoding: .utf8)
    }

    /// Forgets this process.
    public func unregisterProcess() {
        try? FileManager.default.removeItem(atPath: processDirectory + "/\(getpid())")
    }

    /// The daemons recorded in this session: pid and role.
    public func processes() -> [(pid: pid_t, role: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: processDirectory)) ?? []
        return names.compactMap { name in
            guard let pid = pid_t(name) else { return nil }
            let role = (try? String(contentsOfFile: processDirectory + "/" + name, encoding: .utf8)) ?? ""
            return (pid, role.trimmingCharacters(in: .whitespacesAndNewlines))
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
