import Foundation
import Shoal
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `cluster submit` and `cluster job …` against a cluster of separate processes.
@Suite(.serialized) struct JobIntegrationTests {
    /// Runs the `cluster` binary to its end.
    func cli(
        _ arguments: [String], _ cluster: ClusterProcesses, timeout: Duration = .seconds(120)
    ) async throws -> (
        status: Int32, output: [String]
    ) {
        let process = try RunningProcess(binaryPath("cluster"), arguments, environment: cluster.environment)
        let status = try await process.waitForExit(timeout: timeout)
        return (status, process.output)
    }

    /// The pids of processes whose environment holds SHOAL_JOB_ID=`id`.
    func processes(ofJob id: String) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        let needle = Array("SHOAL_JOB_ID=\(id)".utf8)
        return names.compactMap { name -> Int32? in
            guard let pid = Int32(name), let environment = FileManager.default.contents(atPath: "/proc/\(name)/environ") else {
                return nil
            }
            // A zombie has no environment left and is not running.
            return environment.split(separator: 0).contains { $0.elementsEqual(needle) } ? pid : nil
        }
    }

    func sha256(ofFile path: String) throws -> String {
        let process = try RunningProcess("/usr/bin/sha256sum", [path])
        _ = try process.output
        let deadline = ContinuousClock.now + .seconds(30)
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        usleep(50_000)
        return String(process.output.first?.split(separator: " ").first ?? "")
    }

    @Test func aSubmittedJobRunsTasksOnTwoNodesStreamsItsOutputAndKeepsItsExitCode() async throws {
        let cluster = try await ClusterProcesses()
        defer { cluster.stop() }
        try await cluster.addNode("second")

        let submitted = try await cli(
            [
                "submit", "--address", cluster.address, "--job-id", "squares-1", "--", binaryPath("shoal-testjob"), "mapreduce",
                "3000",
            ],
            cluster)
        #expect(submitted.status == 0, "\(submitted.output)")
        #expect(submitted.output.contains("connected job=squares-1"), "the driver gets the job id: \(submitted.output)")
        let sum = (0..<3000).reduce(0) { $0 + $1 * $1 }
        #expect(submitted.output.contains("sum=\(sum) nodes=head,second"), "\(submitted.output)")

        // The logs replay what streamed, and the table records the outcome.
        let logs = try await cli(["job", "logs", "--address", cluster.address, "squares-1"], cluster)
        #expect(logs.status == 0)
        #expect(logs.output.contains("sum=\(sum) nodes=head,second"), "\(logs.output)")
        // Its leases, held and still requested, are all given back once it ends.
        var idle = false
        let settle = ContinuousClock.now + .seconds(5)
        while !idle && ContinuousClock.now < settle {
            idle = try cluster.status().nodes.allSatisfy { $0.available[Resources.cpu] == $0.total[Resources.cpu] }
            if !idle { try await Task.sleep(for: .milliseconds(50)) }
        }
        let rendered = try cluster.status().rendered
        #expect(idle, "CPUs still leased after the job ended: \(rendered)")
        let status = try JobClient(address: cluster.address).status("squares-1")
        #expect(status.state == .succeeded)
        #expect(status.exitCode == 0)
        #expect(status.startedAt != nil && status.endedAt != nil)

        // A failing entrypoint: its exit code is the submit's, its stderr is kept.
        let failing = try await cli(
            [
                "submit", "--address", cluster.address, "--job-id", "broken", "--", binaryPath("shoal-testjob"),
                "fail-after-output",
            ],
            cluster)
        #expect(failing.status == 4, "\(failing.output)")
        #expect(failing.output.contains("about to fail"))
        #expect(failing.output.contains("fatal: the data file is corrupt"))
        let failed = try JobClient(address: cluster.address).status("broken")
        #expect(failed.state == .failed)
        #expect(failed.exitCode == 4)
        #expect(failed.message.contains("fatal: the data file is corrupt"), "\(failed.message)")
        let replay = try JobClient(address: cluster.address).readOutput("broken")
        #expect(String(decoding: replay.stderr, as: UTF8.self) == "fatal: the data file is corrupt\n")

        // An entrypoint that does not exist fails at once, saying so.
        let missing = try await cli(["submit", "--address", cluster.address, "--", "no-such-program-anywhere"], cluster)
        #expect(missing.status != 0)
        #expect(missing.output.contains { $0.contains("'no-such-program-anywhere' was not found on PATH") }, "\(missing.output)")
        let list = try await cli(["job", "list", "--address", cluster.address], cluster)
        #expect(list.output.contains { $0.hasPrefix("squares-1 ") && $0.contains("SUCCEEDED") }, "\(list.output)")
        #expect(list.output.contains { $0.hasPrefix("broken ") && $0.contains("FAILED") }, "\(list.output)")
    }

    @Test func aJobThatEndsWithTasksStillQueuedGivesBackEveryLease() async throws {
        let cluster = try await ClusterProcesses()
        defer { cluster.stop() }
        for round in 0..<2 {
            let ended = try await cli(
                ["submit", "--address", cluster.address, "--", binaryPath("shoal-testjob"), "abandon", "20"], cluster)
            #expect(ended.status == 0, "\(ended.output)")
            var idle = false
            let settle = ContinuousClock.now + .seconds(5)
            while !idle && ContinuousClock.now < settle {
                let status = try cluster.status()
                idle =
                    status.pendingLeases == 0
                    && status.nodes.allSatisfy { $0.available[Resources.cpu] == $0.total[Resources.cpu] }
                if !idle { try await Task.sleep(for: .milliseconds(50)) }
            }
            let rendered = try cluster.status().rendered
            #expect(idle, "round \(round): resources still held for an ended job:\n\(rendered)")
        }
        // And the cluster still serves the next job.
        let next = try await cli(
            ["submit", "--address", cluster.address, "--", binaryPath("shoal-testjob"), "mapreduce", "10"], cluster)
        #expect(next.output.contains("sum=285 nodes=head"), "\(next.output)")
    }

    @Test func stoppingARunningJobEndsItAndEveryProcessOfItWithinFiveSeconds() async throws {
        let cluster = try await ClusterProcesses()
        defer { cluster.stop() }
        try await cluster.addNode("second")
        let client = try JobClient(address: cluster.address)
        let job = try client.submit(entrypoint: [binaryPath("shoal-testjob"), "hold", "300"], jobID: "long-one")
        #expect(job.state == .pending)
        // Wait until its driver has run a task, so an executor of it exists too.
        let deadline = ContinuousClock.now + .seconds(60)
        var text = ""
        while ContinuousClock.now < deadline && !text.contains("ready") {
            text = String(decoding: try client.readOutput(job.id, wait: .milliseconds(200)).stdout, as: UTF8.self)
        }
        #expect(text.contains("ready"), "\(text)")
        let before = processes(ofJob: job.id)
        #expect(before.count >= 2, "a driver and at least one executor: \(before)")

        let started = ContinuousClock.now
        let stopped = try await cli(["job", "stop", "--address", cluster.address, job.id], cluster)
        let took = ContinuousClock.now - started
        #expect(stopped.status == 0, "\(stopped.output)")
        #expect(stopped.output.contains("Job long-one STOPPED."), "\(stopped.output)")
        #expect(took < .seconds(5), "stop took \(took)")
        var left = processes(ofJob: job.id)
        let gone = ContinuousClock.now + .seconds(5) - took
        while !left.isEmpty && ContinuousClock.now < gone {
            try await Task.sleep(for: .milliseconds(50))
            left = processes(ofJob: job.id)
        }
        #expect(left.isEmpty, "processes of the stopped job still running: \(left)")
        #expect(try client.status(job.id).state == .stopped)
        let again = try await cli(["job", "stop", "--address", cluster.address, job.id], cluster)
        #expect(again.output.contains("Job long-one had already ended: STOPPED."))
        let unknown = try await cli(["job", "status", "--address", cluster.address, "nope"], cluster)
        #expect(unknown.status != 0)
        #expect(unknown.output.contains { $0.contains("no job 'nope'") }, "\(unknown.output)")
    }

    @Test func twoJobBinariesRunAtOnceAndNeitherRunsInTheOthersExecutors() async throws {
        let cluster = try await ClusterProcesses()
        defer { cluster.stop() }
        try await cluster.addNode("second")
        let first = try RunningProcess(
            binaryPath("cluster"),
            ["submit", "--address", cluster.address, "--job-id", "first", "--", binaryPath("shoal-testjob"), "whoami", "80"],
            environment: cluster.environment)
        let second = try RunningProcess(
            binaryPath("cluster"),
            ["submit", "--address", cluster.address, "--job-id", "second", "--", binaryPath("shoal-otherjob"), "80"],
            environment: cluster.environment)
        #expect(try await first.waitForExit(timeout: .seconds(120)) == 0, "\(first.output)")
        #expect(try await second.waitForExit(timeout: .seconds(120)) == 0, "\(second.output)")

        let firstSHA = try sha256(ofFile: binaryPath("shoal-testjob"))
        let secondSHA = try sha256(ofFile: binaryPath("shoal-otherjob"))
        #expect(firstSHA.count == 64 && secondSHA.count == 64 && firstSHA != secondSHA)
        func executables(_ process: RunningProcess) -> [String] {
            process.line(startingWith: "executables=").map {
                $0.dropFirst("executables=".count).split(separator: ",").map(String.init)
            }
                ?? []
        }
        // Executors run from each node's cache of the job's own binary, named by its hash.
        let firstRan = executables(first)
        let secondRan = executables(second)
        #expect(!firstRan.isEmpty && firstRan.allSatisfy { $0.hasSuffix("/packages/\(firstSHA)") }, "\(firstRan)")
        #expect(!secondRan.isEmpty && secondRan.allSatisfy { $0.hasSuffix("/packages/\(secondSHA)") }, "\(secondRan)")
        #expect(first.line(startingWith: "jobs=") == "jobs=first")
        #expect(second.line(startingWith: "jobs=") == "jobs=second")
        let refusal = second.line(startingWith: "foreign=") ?? ""
        #expect(refusal.hasPrefix("foreign=refused") && refusal.contains("test.whoami"), "\(refusal)")

        // They ran at the same time.
        let client = try JobClient(address: cluster.address)
        let a = try client.status("first")
        let b = try client.status("second")
        let overlap = try #require(a.startedAt) < #require(b.endedAt) && #require(b.startedAt) < #require(a.endedAt)
        #expect(overlap, "\(a) \(b)")
    }

    @Test func theWorkingDirectoryShipsOnceLeavesOutBuildOutputAndOversizedOnesAreRefusedClearly() async throws {
        let cluster = try await ClusterProcesses()
        defer { cluster.stop() }
        let folder = NSTemporaryDirectory() + "shoal-wd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/data", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder + "/.build/debug", withIntermediateDirectories: true)
        try "#!/bin/sh\necho \"value: $(cat data/value.txt) job: $SHOAL_JOB_ID mode: $MODE\"\nls -a\n".write(
            toFile: folder + "/run.sh", atomically: true, encoding: .utf8)
        chmod(folder + "/run.sh", 0o755)
        try "42".write(toFile: folder + "/data/value.txt", atomically: true, encoding: .utf8)
        // Build output is left out: this 8 MiB file would break the 1 MiB limit below.
        FileManager.default.createFile(atPath: folder + "/.build/debug/huge", contents: Data(count: 8 << 20))

        let arguments = ["submit", "--address", cluster.address, "--working-dir", folder, "--max-working-dir-size", "1MiB"]
        let first = try await cli(arguments + ["--env", "MODE=fast", "--job-id", "wd-1", "--", "./run.sh"], cluster)
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("value: 42 job: wd-1 mode: fast"), "\(first.output)")
        #expect(first.output.contains { $0.hasPrefix("Uploaded working directory") }, "\(first.output)")
        #expect(!first.output.contains(".build"), "build output must not travel")
        let second = try await cli(arguments + ["--", "./run.sh"], cluster)
        #expect(second.status == 0)
        #expect(second.output.contains { $0.contains("is already on the head") }, "\(second.output)")

        FileManager.default.createFile(atPath: folder + "/data/big.bin", contents: Data(count: 3 << 20))
        let big = try await cli(arguments + ["--", "./run.sh"], cluster)
        #expect(big.status != 0)
        let message = big.output.joined(separator: "\n")
        #expect(message.contains("over the limit of 1.0 MiB") && message.contains("data (3.0 MiB)"), "\(message)")
    }

    @Test func aRestartedHeadKeepsTheJobTable() async throws {
        let session = NSTemporaryDirectory() + "shoal-restart-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: session) }
        let environment = ["SHOAL_SESSION_DIR": session, "SHOAL_HEARTBEAT_MS": "200", "SHOAL_LOG_LEVEL": "warning"]
        func startHead() async throws -> (RunningProcess, String) {
            let head = try RunningProcess(
                binaryPath("cluster"), ["start", "--head", "--port", "0", "--num-cpus", "2", "--block"], environment: environment)
            let line = try await head.waitForLine(startingWith: "Shoal head started at", timeout: .seconds(30))
            return (head, String(line.split(separator: " ")[4]))
        }
        var (head, address) = try await startHead()
        defer { head.killTree() }
        var client = try JobClient(address: address)
        let done = try client.submit(entrypoint: ["/bin/sh", "-c", "echo finished before the restart"], jobID: "before")
        _ = try client.follow(done.id) { _, _ in }
        let running = try client.submit(entrypoint: ["/bin/sleep", "300"], jobID: "sleeper")
        var sleeperPID: Int32 = 0
        while sleeperPID == 0 {
            sleeperPID = try client.status(running.id).driverPID
            try await Task.sleep(for: .milliseconds(20))
        }

        head.signal(SIGTERM)
        _ = try await head.waitForExit(timeout: .seconds(20))
        (head, address) = try await startHead()
        client = try JobClient(address: address)
        let jobs = try client.list()
        #expect(jobs.map(\.id) == ["before", "sleeper"])
        #expect(jobs.first?.state == .succeeded)
        #expect(jobs.first?.exitCode == 0)
        #expect(jobs.last?.state == .failed)
        #expect(jobs.last?.message.contains("the head stopped") == true, "\(jobs.last?.message ?? "")")
        #expect(!ChildProcess.isAlive(sleeperPID), "a job's driver does not outlive its head")
        let output = try client.readOutput("before")
        #expect(String(decoding: output.stdout, as: UTF8.self) == "finished before the restart\n")

        // A head killed outright: the next one finds the orphaned driver, ends it, and says so.
        let orphan = try client.submit(entrypoint: ["/bin/sleep", "300"], jobID: "orphan")
        var orphanPID: Int32 = 0
        while orphanPID == 0 {
            orphanPID = try client.status(orphan.id).driverPID
            try await Task.sleep(for: .milliseconds(20))
        }
        head.signal(SIGKILL)
        _ = try await head.waitForExit(timeout: .seconds(20))
        #expect(ChildProcess.isAlive(orphanPID), "the driver outlives a killed head")
        (head, address) = try await startHead()
        client = try JobClient(address: address)
        let recovered = try client.status("orphan")
        #expect(recovered.state == .failed)
        #expect(recovered.message.contains("the head restarted while the job was running"), "\(recovered.message)")
        let deadline = ContinuousClock.now + .seconds(5)
        while ChildProcess.isAlive(orphanPID) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!ChildProcess.isAlive(orphanPID), "the restarted head ends the orphaned driver")
        #expect(try client.list().count == 3)
        head.signal(SIGTERM)
        _ = try await head.waitForExit(timeout: .seconds(20))
    }
}
