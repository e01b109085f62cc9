import Foundation
import Shoal
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Where the package's built executables are: `SHOAL_BIN_DIR` (set by `make test`), else the
/// debug build folder next to this package.
public func binaryPath(_ name: String) -> String {
    if let directory = ProcessInfo.processInfo.environment["SHOAL_BIN_DIR"] {
        return directory + "/" + name
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/\(name)").path
}

/// A child process whose output lines are collected as they arrive.
///
/// Started with posix_spawn, its stdout and stderr go into one pipe read by a thread of its own,
/// and only this object reaps it: no Foundation `Process` (whose SIGCHLD monitor and
/// readability sources race with many children started and ended at once).
public final class RunningProcess: Sendable {
    public let pid: Int32
    private let buffer = LineBuffer()
    /// The exit status (128 + the signal for a signalled end) once reaped.
    private let exitStatus = Mutex<Int32?>(nil)

    /// Output split into lines as it arrives from the pipe's reader thread.
    final class LineBuffer: Sendable {
        private let state = Mutex<(lines: [String], partial: [UInt8])>(([], []))
        /// Set by the reader thread at the pipe's end (every holder of its write end has exited).
        private let ended = Mutex(false)

        func finish() { ended.withLock { $0 = true } }
        var isFinished: Bool { ended.withLock { $0 } }

        func append(_ bytes: UnsafeBufferPointer<UInt8>) {
            state.withLock { state in
                var start = 0
                for index in 0..<bytes.count where bytes[index] == UInt8(ascii: "\n") {
                    state.partial.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                    state.lines.append(String(decoding: state.partial, as: UTF8.self))
                    state.partial.removeAll(keepingCapacity: true)
                    start = index + 1
                }
                state.partial.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
            }
        }

        var lines: [String] { state.withLock { $0.lines } }
    }

    /// Starts `path` with `arguments` and `environment` added to ours.
    public init(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        // Close-on-exec, so children started at the same time by other tests do not hold the
        // write end open (the child's own copies, made by dup2, stay open).
        let (readEnd, writeEnd) = try ChildProcess.pipe()
        do {
            pid = try ChildProcess.spawn(
                path, arguments: arguments,
                environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                outputDescriptor: writeEnd)
        } catch {
            close(readEnd)
            close(writeEnd)
            throw error
        }
        close(writeEnd)
        let buffer = self.buffer
        let reader = Thread {
            let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 1 << 16)
            defer {
                chunk.deallocate()
                close(readEnd)
                buffer.finish()
            }
            while true {
                let count = read(readEnd, chunk.baseAddress, chunk.count)
                if count > 0 {
                    buffer.append(UnsafeBufferPointer(rebasing: chunk[0..<count]))
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
        reader.name = "output of \(pid)"
        reader.start()
    }

    /// Every line printed so far (stdout and stderr).
    public var output: [String] { buffer.lines }

    /// The first line starting with `prefix`.
    public func line(startingWith prefix: String) -> String? {
        output.first { $0.hasPrefix(prefix) }
    }

    /// Waits until a line starting with `prefix` appears.
    public func waitForLine(startingWith prefix: String, timeout: Duration) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = line(startingWith: prefix) { return line }
            if !isRunning {
                // The last lines may still be in the pipe.
                try await drainOutput()
                if let line = line(startingWith: prefix) { return line }
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ClusterError.timeout(
            "no line starting with '\(prefix)' within \(timeout) (\(isRunning ? "still running" : "exited")); output:\n"
                + output.suffix(30).joined(separator: "\n"))
    }

    /// Reaps the child if it has exited; its status then, else nil.
    private func reap() -> Int32? {
        exitStatus.withLock { exit in
            if let exit { return exit }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                exit = ChildProcess.exitCode(status)
            } else if result < 0 && errno == ECHILD {
                exit = -1
            }
            return exit
        }
    }

    /// Waits for the process to exit; returns its status (128 + the signal when one ended it).
    public func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = reap() {
                try await drainOutput()
                if status != 0 {
                    // A test that expects success shows why it did not get it.
                    let tail = output.suffix(30).joined(separator: "\n")
                    FileHandle.standardError.write(Data("process \(pid) exited with \(status); its output ends:\n\(tail)\n".utf8))
                }
                return status
            }
            guard ContinuousClock.now < deadline else {
                throw ClusterError.timeout(
                    "process \(pid) still running after \(timeout); output:\n\(output.suffix(30).joined(separator: "\n"))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// After the child's exit: waits (up to 5 s, as a grandchild may hold the pipe open) until the
    /// reader thread has taken everything from the pipe.
    private func drainOutput() async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !buffer.isFinished && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
    }

    public var isRunning: Bool { reap() == nil }

    /// Sends a signal to the process, unless it has been reaped (its pid may belong to another
    /// process by now).
    public func signal(_ signal: Int32) {
        exitStatus.withLock { exit in
            if exit == nil { kill(pid, signal) }
        }
    }

    /// Kills the process and everything below it with SIGKILL, unless it has been reaped.
    public func killTree() {
        exitStatus.withLock { exit in
            if exit == nil { ClusterProcesses.killTree(pid) }
        }
    }
}

/// A cluster of separate OS processes on loopback: a head (with its node daemon) and extra
/// node daemons, each started with `cluster start --block`.
public final class ClusterProcesses: Sendable {
    public let session: String
    public let environment: [String: String]
    public let head: RunningProcess
    public let address: String
    private let nodes = Mutex<[String: RunningProcess]>([:])
    private let drivers = Mutex<[RunningProcess]>([])

    /// Starts the head with `cpus` CPUs and waits until it answers.
    /// - Parameter nodeTimeoutMilliseconds: the head's node timeout. Tests that end nodes on
    ///   purpose shorten it; the default outlasts the stalls of a loaded two-core machine, which
    ///   are not what the other tests are about.
    /// - Parameter environment: more variables for every process of the cluster and its drivers.
    public init(
        cpus: Int = 2, nodeTimeoutMilliseconds: Int = 6000, headArguments: [String] = [],
        environment extra: [String: String] = [:]
    ) async throws {
        session = NSTemporaryDirectory() + "shoal-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        environment = [
            "SHOAL_SESSION_DIR": session,
            "SHOAL_HEARTBEAT_MS": "200",
            "SHOAL_NODE_TIMEOUT_MS": String(nodeTimeoutMilliseconds),
            "SHOAL_LOG_LEVEL": "warning",
        ].merging(extra) { $1 }
        head = try RunningProcess(
            binaryPath("cluster"),
            ["start", "--head", "--port", "0", "--num-cpus", String(cpus), "--node-id", "head", "--block"] + headArguments,
            environment: environment)
        let line = try await head.waitForLine(startingWith: "Shoal head started at", timeout: .seconds(30))
        address = String(line.split(separator: " ")[4])
    }

    /// Starts a node daemon that joins the head, and waits until the head lists it alive.
    @discardableResult
    public func addNode(_ id: String, cpus: Int = 2) async throws -> RunningProcess {
        let node = try RunningProcess(
            binaryPath("cluster"),
            ["start", "--address", address, "--num-cpus", String(cpus), "--node-id", id, "--block"],
            environment: environment)
        nodes.withLock { $0[id] = node }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try status().nodes.contains(where: { $0.id == id && $0.alive }) { return node }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClusterError.timeout("node \(id) did not join; output:\n\(node.output.joined(separator: "\n"))")
    }

    public func node(_ id: String) -> RunningProcess? { nodes.withLock { $0[id] } }

    /// The head's status.
    public func status() throws -> ClusterStatus {
        try ControlClient(address: address).status(timeout: .seconds(5))
    }

    /// Runs a job binary (the test job by default) as a driver of this cluster.
    public func driver(
        _ arguments: [String], binary: String = "shoal-testjob", environment extra: [String: String] = [:]
    ) throws -> RunningProcess {
        let driver = try RunningProcess(
            binaryPath(binary), arguments,
            environment: environment.merging(["SHOAL_ADDRESS": address]) { $1 }.merging(extra) { $1 })
        drivers.withLock { $0.append(driver) }
        return driver
    }

    /// Runs the test job with a pause point (`SHOAL_TEST_PAUSE_FILE`) and waits until it has
    /// printed a line starting with `line`, on its way to that point; `resume` lets it go on.
    public func pausedDriver(
        _ arguments: [String], pausingAfter line: String
    ) async throws -> (driver: RunningProcess, resume: @Sendable () -> Void) {
        // Inside the session folder, which `stop` removes.
        let pause = session + "/go-on"
        try FileManager.default.createDirectory(atPath: session, withIntermediateDirectories: true)
        let driver = try self.driver(arguments, environment: ["SHOAL_TEST_PAUSE_FILE": pause])
        _ = try await driver.waitForLine(startingWith: line, timeout: .seconds(60))
        return (driver, { FileManager.default.createFile(atPath: pause, contents: Data()) })
    }

    /// What the head, the nodes and the executors printed: written out when a driver was still
    /// running at the stop (a test that timed out), so that its failure shows where the work stuck.
    public func diagnostics() -> String {
        var parts = ["head output:"] + head.output.suffix(40)
        for (id, node) in nodes.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            parts += ["node \(id) output:"] + node.output.suffix(40)
        }
        let files = FileManager.default.enumerator(atPath: session)?.compactMap { $0 as? String } ?? []
        for log in files.filter({ $0.hasSuffix(".log") }).sorted() {
            let text = (try? String(contentsOfFile: session + "/" + log, encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).suffix(20)
            parts += ["\(log):"] + lines.map(String.init)
        }
        return parts.joined(separator: "\n")
    }

    /// Kills `pid` and every process below it with SIGKILL.
    public static func killTree(_ pid: Int32) {
        let children = ProcessMemory.descendants(of: pid)
        kill(pid, SIGKILL)
        for child in children { kill(child, SIGKILL) }
    }

    /// Stops every process of the cluster and removes the session folder.
    public func stop() {
        if drivers.withLock({ $0.contains(where: \.isRunning) }) {
            FileHandle.standardError.write(Data("a driver was still running at the cluster's stop\n\(diagnostics())\n".utf8))
        }
        let all = [head] + nodes.withLock { Array($0.values) } + drivers.withLock { $0 }
        for process in all { process.signal(SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(5)
        while all.contains(where: \.isRunning) && ContinuousClock.now < deadline { usleep(20_000) }
        for process in all where process.isRunning { process.killTree() }
        try? FileManager.default.removeItem(atPath: session)
    }
}
