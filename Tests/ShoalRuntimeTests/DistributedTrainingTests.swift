import Foundation
import ShoalTensor
import ShoalTestSupport
import Testing

/// `trading model train --workers N` on a cluster of separate processes.
@Suite(.serialized) struct DistributedTrainingTests {
    /// A small model without dropout, so that only the order of float sums tells runs apart.
    static func writeConfig(_ folder: String, maxSteps: Int, batch: Int, checkpointEvery: Int = 0) throws -> String {
        let path = folder + "/config.json"
        let text = """
            {"model": {"convChannels": 8, "kernels": [3, 5], "heads": 2, "lstmHidden": 8, "lstmLayers": 1, "fusionSize": 16,
                       "dropout": 0},
             "data": {"bars": 700, "steps": 16},
             "batchSize": \(batch), "maxSteps": \(maxSteps), "epochs": 50, "patience": 0, "checkpointEvery": \(checkpointEvery)}
            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func folder(_ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "shoal-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// ‖a − b‖ / ‖a‖ over every tensor.
    static func relativeDifference(_ a: [String: Tensor], _ b: [String: Tensor]) -> Double {
        var difference = 0.0
        var norm = 0.0
        for (name, tensor) in a {
            guard let other = b[name], other.shape == tensor.shape else { return .infinity }
            for (x, y) in zip(tensor.scalars, other.scalars) {
                difference += Double(x - y) * Double(x - y)
                norm += Double(x) * Double(x)
            }
        }
        return (difference / norm).squareRoot()
    }

    /// N workers at batch B/N each end, after 50 steps, with the weights of one process at batch B.
    @Test func workersAtAShareOfTheBatchMatchOneProcessAtTheWholeBatch() async throws {
        let folder = try Self.folder("dp-determinism")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = try Self.writeConfig(folder, maxSteps: 50, batch: 12)
        let single = try RunningProcess(binaryPath("trading"), ["model", "train", "--config", config, "--out", folder + "/one"])
        #expect(try await single.waitForExit(timeout: .seconds(300)) == 0, "\(single.output)")
        let expected = try SafeTensors.read(path: folder + "/one/model.safetensors").tensors

        let cluster = try await ClusterProcesses(cpus: 3)
        defer { cluster.stop() }
        for (workers, collective) in [(2, "automatic"), (3, "automatic"), (2, "ring")] {
            let out = folder + "/\(workers)-\(collective)"
            let driver = try cluster.driver(
                ["model", "train", "--config", config, "--out", out, "--workers", String(workers), "--collective", collective],
                binary: "trading")
            #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
            let up = driver.line(startingWith: "Workers up") ?? ""
            #expect(up.contains(collective == "ring" ? "ZeroMQ ring" : "shared memory"), "\(up)")
            #expect(up.contains("rank \(workers - 1) on"), "\(up)")
            let weights = try SafeTensors.read(path: out + "/model.safetensors").tensors
            let difference = Self.relativeDifference(expected, weights)
            print("determinism: \(workers) workers over \(collective): ‖Δ‖/‖w‖ = \(difference)")
            #expect(difference < 1e-5, "\(workers) workers over \(collective): ‖Δ‖/‖w‖ = \(difference)")
            #expect(difference > 0 || workers == 1, "identical bits: the workers may not have split the batch")
        }
        // A batch that does not split evenly is refused before any worker starts.
        let uneven = try cluster.driver(
            ["model", "train", "--config", config, "--out", folder + "/uneven", "--workers", "5"], binary: "trading")
        #expect(try await uneven.waitForExit(timeout: .seconds(120)) != 0)
        #expect(uneven.output.contains { $0.contains("does not split evenly into 5 workers") }, "\(uneven.output)")
        // GPUs that no node has: refused clearly when the workers' group is placed.
        let gpus = try cluster.driver(
            ["model", "train", "--config", config, "--out", folder + "/gpu", "--workers", "2", "--gpus-per-worker", "1"],
            binary: "trading")
        #expect(try await gpus.waitForExit(timeout: .seconds(120)) != 0)
        #expect(
            gpus.output.contains { $0.contains("cannot reserve 2 worker(s) of 1 CPU(s) and 1 GPU(s)") }, "\(gpus.output)")
    }

    /// A worker's process killed mid-run: the group restarts from the last checkpoint on the
    /// nodes left, and the run ends at its target step with a continuous learning curve.
    @Test func aKilledWorkerIsReplacedFromTheLastCheckpoint() async throws {
        let folder = try Self.folder("dp-failure")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = try Self.writeConfig(folder, maxSteps: 600, batch: 8, checkpointEvery: 40)
        let cluster = try await ClusterProcesses(cpus: 1)
        defer { cluster.stop() }
        try await cluster.addNode("second", cpus: 1)
        let out = folder + "/run"
        let driver = try cluster.driver(
            ["model", "train", "--config", config, "--out", out, "--workers", "2", "--placement", "spread"], binary: "trading")
        let up = try await driver.waitForLine(startingWith: "Workers up", timeout: .seconds(120))
        _ = try await driver.waitForLine(startingWith: "Checkpoint:", timeout: .seconds(120))
        // "rank 1 on NODE (pid P)"
        let rank1 = try #require(up.components(separatedBy: "rank 1 on ").last)
        let pid = try #require(Int32(rank1.components(separatedBy: "(pid ").last?.prefix { $0.isNumber } ?? ""))
        #expect(pid != driver.pid)
        kill(pid, SIGKILL)
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let failure = driver.output.first { $0.hasPrefix("Worker failure") } ?? ""
        #expect(failure.contains("Restarting the workers from the checkpoint at step"), "\(driver.output)")
        #expect(driver.output.filter { $0.hasPrefix("Workers up") }.count == 2, "\(driver.output)")
        #expect(driver.output.contains { $0.contains("step 600/600") }, "\(driver.output)")
        let rows = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        let epochs = rows.compactMap { $0.split(separator: ",").first.flatMap { Int($0) } }
        #expect(!epochs.isEmpty && epochs == Array(1...epochs.count), "metrics.csv epochs \(epochs)")
        #expect(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        if ProcessInfo.processInfo.environment["SHOAL_TEST_VERBOSE"] != nil { print(driver.output.joined(separator: "\n")) }
    }

    /// The workers are the job's actors: a driver that dies takes them with it (once the head
    /// notices, after its driver timeout).
    @Test func theDriversDeathEndsItsWorkers() async throws {
        let folder = try Self.folder("dp-driver-death")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = try Self.writeConfig(folder, maxSteps: 100_000, batch: 8)
        let cluster = try await ClusterProcesses(cpus: 2, environment: ["SHOAL_DRIVER_TIMEOUT_MS": "4000"])
        defer { cluster.stop() }
        let driver = try cluster.driver(
            ["model", "train", "--config", config, "--out", folder + "/run", "--workers", "2"], binary: "trading")
        let up = try await driver.waitForLine(startingWith: "Workers up", timeout: .seconds(120))
        let pids = Set(up.components(separatedBy: "(pid ").dropFirst().compactMap { Int32($0.prefix { $0.isNumber }) })
        #expect(!pids.isEmpty && !pids.contains(driver.pid))
        driver.signal(SIGKILL)
        let deadline = ContinuousClock.now + .seconds(60)
        while pids.contains(where: { kill($0, 0) == 0 }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(!pids.contains { kill($0, 0) == 0 }, "workers \(pids) outlived their driver")
    }

    /// Bytes received per TCP socket of every process (`ss -tinpH`), keyed by the socket's
    /// addresses and its owner's pid.
    static func socketBytes() -> [String: (pid: Int32, received: Int)] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ss", "-tinpH", "state", "established"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return [:] }
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var result: [String: (pid: Int32, received: Int)] = [:]
        var key: String?
        var pid: Int32 = 0
        for line in text.split(separator: "\n") {
            if !line.hasPrefix("\t"), let users = line.range(of: "pid=") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                key = fields.count >= 4 ? "\(fields[2])>\(fields[3])" : nil
                pid = Int32(line[users.upperBound...].prefix { $0.isNumber }) ?? 0
                if let key { result[key + "@\(pid)"] = (pid, 0) }
            } else if let key, let range = line.range(of: "bytes_received:") {
                let value = Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
                result[key + "@\(pid)"] = (pid, value)
            }
        }
        return result
    }

    /// Over the ring, the gradients go from worker to worker: the head and the driver receive a
    /// small fraction of what the workers do, measured from the kernel's per-socket counters.
    @Test func allReduceTrafficGoesBetweenWorkersNotThroughTheHeadOrTheDriver() async throws {
        let folder = try Self.folder("dp-traffic")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = try Self.writeConfig(folder, maxSteps: 400, batch: 8)
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let arguments = ["model", "train", "--config", config, "--workers", "2", "--collective", "ring"]
        // A first run ships the binary to the node; the second one is measured.
        let first = try cluster.driver(arguments + ["--out", folder + "/first", "--max-steps", "2"], binary: "trading")
        #expect(try await first.waitForExit(timeout: .seconds(300)) == 0, "\(first.output)")
        let baseline = Self.socketBytes()
        let driver = try cluster.driver(arguments + ["--out", folder + "/measured"], binary: "trading")
        var peak: [String: (pid: Int32, received: Int)] = [:]
        while driver.isRunning {
            for (key, value) in Self.socketBytes() where value.received > (peak[key]?.received ?? -1) { peak[key] = value }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let up = try #require(driver.line(startingWith: "Workers up"))
        let workerPIDs = Set(up.components(separatedBy: "(pid ").dropFirst().compactMap { Int32($0.prefix { $0.isNumber }) })
        let parameters = try #require(
            driver.line(startingWith: "Model:")?.split(separator: " ").dropFirst().first.flatMap { Int($0) })
        // Each step, each of the 2 ranks receives half of the buffer twice (reduce-scatter, all-gather).
        let ringBytes = 400 * 2 * (parameters + 1) * 4
        func received(by pids: Set<Int32>) -> Int {
            peak.filter { pids.contains($0.value.pid) }.reduce(0) { $0 + max(0, $1.value.received - (baseline[$1.key]?.received ?? 0)) }
        }
        let workers = received(by: workerPIDs)
        let steering = received(by: [cluster.head.pid, driver.pid])
        print("traffic: workers received \(workers) B, head and driver \(steering) B, the ring's gradients \(ringBytes) B")
        #expect(!workerPIDs.contains(driver.pid) && !workerPIDs.contains(cluster.head.pid))
        #expect(workers >= ringBytes * 8 / 10, "the workers received \(workers) B of \(ringBytes) B of gradients")
        #expect(steering < ringBytes / 10, "the head and the driver received \(steering) B beside \(ringBytes) B of gradients")
    }
}

