import Foundation
import Shoal
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `cluster start`, `status` and `stop` as a person uses them: daemons in the background,
/// found through the session folder.
@Suite(.serialized) struct ClusterCommandTests {
    func run(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: [String]) {
        let process = try RunningProcess(binaryPath("cluster"), arguments, environment: environment)
        let status = try await process.waitForExit(timeout: .seconds(60))
        return (status, process.output)
    }

    @Test func startStatusDriverAndStopThroughTheSessionFolder() async throws {
        let session = NSTemporaryDirectory() + "shoal-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let environment = ["SHOAL_SESSION_DIR": session, "SHOAL_HEARTBEAT_MS": "200", "CUDA_VISIBLE_DEVICES": "3,5"]
        defer {
            // Whatever happened, leave nothing running.
            for entry in Session(directory: session).processes() { ClusterProcesses.killTree(entry.pid) }
            try? FileManager.default.removeItem(atPath: session)
        }
        let started = try await run(
            ["start", "--head", "--port", "0", "--num-cpus", "2", "--node-id", "main"], environment: environment)
        #expect(started.status == 0, "\(started.output)")
        let line = try #require(started.output.first { $0.hasPrefix("Shoal head started at tcp://127.0.0.1:") })
        let address = String(line.split(separator: " ")[4])

        let joined = try await run(
            [
                "start", "--address", address.replacingOccurrences(of: "tcp://", with: ""), "--num-cpus", "1", "--node-id",
                "extra", "--num-gpus", "0",
            ], environment: environment)
        #expect(joined.status == 0, "\(joined.output)")

        let status = try await run(["status"], environment: environment)
        #expect(status.status == 0)
        #expect(status.output.contains { $0.hasPrefix("main ") && $0.contains("alive") && $0.contains("GPU 0/2") })
        #expect(status.output.contains { $0.hasPrefix("extra ") && $0.contains("alive") && $0.contains("CPU 0/1") })

        // A driver with no address finds the cluster through the session folder.
        let driver = try RunningProcess(binaryPath("shoal-testjob"), ["gpus"], environment: environment)
        #expect(try await driver.waitForExit(timeout: .seconds(60)) == 0, "\(driver.output)")
        #expect(driver.line(startingWith: "gpus=") == "gpus=3,5", "each GPU task gets its own device")
        #expect(driver.line(startingWith: "actor gpus=") == "actor gpus=3,5", "each GPU actor gets its own process and device")

        let pids = Session(directory: session).processes().map(\.pid)
        #expect(pids.count == 2)
        let stopped = try await run(["stop"], environment: environment)
        #expect(stopped.status == 0)
        #expect(stopped.output.filter { $0.hasPrefix("Stopped") }.count == 2, "\(stopped.output)")
        for pid in pids { #expect(!ChildProcess.isAlive(pid), "daemon \(pid) should be gone") }
        #expect(Session(directory: session).headAddress() == nil)
    }

    /// A record whose pid now belongs to another process is reported and dropped, and that
    /// process is never signalled; a record of a pid that is gone is reported too.
    @Test func stopLeavesAProcessThatReusedARecordedPidAlone() async throws {
        let session = NSTemporaryDirectory() + "shoal-cli-stale-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: session) }
        let folder = session + "/processes"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let sleeper = try RunningProcess("/bin/sleep", ["60"])
        defer { sleeper.killTree() }
        // The node daemon recorded under this pid started earlier and ran `cluster`.
        let started = try #require(Session.startTime(of: sleeper.pid))
        try "node\n\(started - 1)\n\(binaryPath("cluster"))\n".write(
            toFile: "\(folder)/\(sleeper.pid)", atomically: true, encoding: .utf8)
        // A head whose process is gone.
        let gone = try RunningProcess("/bin/true", [])
        _ = try await gone.waitForExit(timeout: .seconds(10))
        try "head\n1\n\(binaryPath("cluster"))\n".write(toFile: "\(folder)/\(gone.pid)", atomically: true, encoding: .utf8)

        let stopped = try await run(["stop", "--grace", "1"], environment: ["SHOAL_SESSION_DIR": session])
        #expect(stopped.status == 0, "\(stopped.output)")
        let text = stopped.output.joined(separator: "\n")
        #expect(text.contains("Stale record of node (pid \(sleeper.pid)): pid \(sleeper.pid) now belongs to another process"), "\(text)")
        #expect(text.contains("Stale record of head (pid \(gone.pid)): no process has pid \(gone.pid) any more"), "\(text)")
        #expect(!text.contains("Stopped") && !text.contains("Killed"), "\(text)")
        #expect(sleeper.isRunning, "cluster stop signalled a process that is not Shoal's")
        #expect(Session(directory: session).processes().isEmpty)
    }

    /// A node that was SIGKILLed shows as DEAD with its executors gone and its resources
    /// unavailable, and the cluster's total counts the alive nodes only.
    @Test func aDeadNodesResourcesAreUnavailableNotInUse() async throws {
        let cluster = try await ClusterProcesses(cpus: 1, nodeTimeoutMilliseconds: 1500)
        defer { cluster.stop() }
        let second = try await cluster.addNode("second", cpus: 3)
        ClusterProcesses.killTree(second.pid)
        let deadline = ContinuousClock.now + .seconds(30)
        while try cluster.status().nodes.contains(where: { $0.id == "second" && $0.alive }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = try await run(["status", "--address", cluster.address], environment: cluster.environment)
        #expect(status.status == 0, "\(status.output)")
        let line = try #require(status.output.first { $0.hasPrefix("second ") }, "\(status.output)")
        #expect(line.contains("DEAD") && line.contains("gone") && line.contains("unavailable (CPU 3"), "\(line)")
        #expect(!line.contains("CPU 3/3"), "\(line)")
        let total = try #require(status.output.first { $0.hasPrefix("TOTAL ") }, "\(status.output)")
        #expect(total.contains("1/2") && total.contains("CPU 0/1") && total.contains("(alive nodes)"), "\(total)")
        let snapshot = try cluster.status()
        #expect(snapshot.aliveTotal[Resources.cpu] == 1)
        #expect(snapshot.nodes.first { $0.id == "second" }?.executors == 0)
    }

    @Test func badArgumentsAreClearErrors() async throws {
        let environment = ["SHOAL_SESSION_DIR": NSTemporaryDirectory() + "shoal-cli-bad-\(getpid())"]
        let neither = try await run(["start"], environment: environment)
        #expect(neither.status != 0)
        #expect(neither.output.joined(separator: "\n").contains("exactly one of --head and --address"))
        let badJSON = try await run(["start", "--head", "--resources", "{oops"], environment: environment)
        #expect(badJSON.output.joined(separator: "\n").contains("--resources must be a JSON object"))
        let nobody = try await run(["status", "--address", "127.0.0.1:1"], environment: environment)
        #expect(nobody.status != 0)
        #expect(nobody.output.joined(separator: "\n").contains("no head answered at tcp://127.0.0.1:1"))
    }
}
