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
public final class RunningProcess: Sendable {
    public let pid: Int32
    private let process: Process
    private let buffer = LineBuffer()

    /// Output split into lines as it arrives from the pipe's reader thread.
    final class LineBuffer: Sendable {
        private let state = Mutex<(lines: [String], partial: String)>(([], ""))

        func append(_ text: String) {
            state.withLock { state in
                state.partial += text
                var pieces = state.partial.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                state.partial = pieces.removeLast()
                state.lines.append(contentsOf: pieces)
            }
        }

        var lines: [String] { state.withLock { $0.lines } }
    }

    /// Starts `path` with `arguments` and `environment` added to ours.
    public init(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        self.process = process
        try process.run()
        pid = process.processIdentifier
        let buffer = self.buffer
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            buffer.append(String(decoding: data, as: UTF8.self))
        }
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
            if !process.isRunning, let line = line(startingWith: prefix) { return line }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ClusterError.timeout(
            "no line starting with '\(prefix)' within \(timeout); output:\n\(output.suffix(30).joined(separator: "\n"))")
    }

    /// Waits for the process to exit; returns its status.
    public func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            // Foundation does not always reap a child whose own child lives on (as `cluster
            // start` leaves a daemon behind): reap a zombie here.
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                try await Task.sleep(for: .milliseconds(50))
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            // Reaped by Foundation, whose own bookkeeping may lag: once the pid is gone, give it
            // a moment to catch up rather than waiting out the whole timeout.
            if reaped < 0 && errno == ECHILD && kill(pid, 0) != 0 && errno == ESRCH {
                let settle = ContinuousClock.now + .seconds(5)
                while process.isRunning && ContinuousClock.now < settle { try await Task.sleep(for: .milliseconds(20)) }
                guard !process.isRunning else {
                    throw ClusterError.timeout(
                        "process \(pid) exited but its status was lost; output:\n\(output.suffix(30).joined(separator: "\n"))")
                }
                break
            }
            guard ContinuousClock.now < deadline else {
                throw ClusterError.timeout(
                    "process \(pid) still running after \(timeout); output:\n\(output.suffix(30).joined(separator: "\n"))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(50))
        return process.terminationStatus
    }

    public var isRunning: Bool { process.isRunning }

    /// Sends a signal to the process.
    public func signal(_ signal: Int32) { kill(pid, signal) }
}

/// A cluster of separate OS processes on loopback: a head (with its node daemon) and extra
/// node daemons, each started with `cluster start --block`.
public final class ClusterProcesses: Sendable {
    public let session: String
    public let environment: [String: String]
    public let head: RunningProcess
    public let address: String
    private let nodes = Mutex<[String: RunningProcess]>([:])

    /// Starts the head with `cpus` CPUs and waits until it answers.
    public init(cpus: Int = 2, nodeTimeoutMilliseconds: Int = 2000, headArguments: [String] = []) async throws {
        session = NSTemporaryDirectory() + "shoal-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        environment = [
            "SHOAL_SESSION_DIR": session,
            "SHOAL_HEARTBEAT_MS": "200",
            "SHOAL_NODE_TIMEOUT_MS": String(nodeTimeoutMilliseconds),
            "SHOAL_LOG_LEVEL": "warning",
        ]
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

    /// Runs the test job binary as a driver of this cluster.
    public func driver(_ arguments: [String]) throws -> RunningProcess {
        try RunningProcess(
            binaryPath("shoal-testjob"), arguments, environment: environment.merging(["SHOAL_ADDRESS": address]) { $1 })
    }

    /// Kills `pid` and every process below it with SIGKILL.
    public static func killTree(_ pid: Int32) {
        let children = ProcessMemory.descendants(of: pid)
        kill(pid, SIGKILL)
        for child in children { kill(child, SIGKILL) }
    }

    /// Stops every process of the cluster and removes the session folder.
    public func stop() {
        let all = [head] + nodes.withLock { Array($0.values) }
        for process in all { process.signal(SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(5)
        while all.contains(where: \.isRunning) && ContinuousClock.now < deadline { usleep(20_000) }
        for process in all where process.isRunning { Self.killTree(process.pid) }
        try? FileManager.default.removeItem(atPath: session)
    }
}
