import Foundation
import Shoal
import ShoalTestSupport
import Testing

/// `trading rl train --env-runners N`: PPO's rollouts sampled by actors in processes of their own.
@Suite(.serialized) struct RolloutWorkerTests {
    static func folder(_ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "shoal-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The pids in a "Runners up: 0 on NODE (pid P), 1 on NODE (pid Q)." line, in runner order.
    static func runnerPIDs(_ line: String) -> [Int32] {
        line.components(separatedBy: "(pid ").dropFirst().compactMap { Int32($0.prefix { $0.isNumber }) }
    }

    /// The evaluation means of the progress lines ("… eval 158.6 ± 43.1 …").
    static func evaluations(_ output: [String]) -> [Double] {
        output.compactMap { line in
            guard let range = line.range(of: " eval ") else { return nil }
            return Double(line[range.upperBound...].prefix { $0 != " " })
        }
    }

    /// Two runners in processes of their own, the learner in the driver: PPO learns CartPole.
    /// (A check of the mechanics, sized for a debug build; learning quality is the benchmark's.)
    @Test func ppoWithTwoRunnersLearnsCartPole() async throws {
        let folder = try Self.folder("rollouts-learn")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(
            ["rl", "train", "--algo", "ppo", "--env", "cartpole", "--env-runners", "2", "--steps", "12288", "--out", folder],
            binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let pids = Self.runnerPIDs(try #require(driver.line(startingWith: "Runners up")))
        #expect(pids.count == 2 && Set(pids).count == 2 && !pids.contains(driver.pid), "\(driver.output)")
        let last = try #require(driver.output.last { $0.contains("steps 12288/12288") }, "\(driver.output)")
        #expect(last.contains("sampling") && last.contains("updates/s"), "\(last)")
        // The runners' own share of the sampling phase: a percentage, the rest being the calls' overhead.
        let busy = last.components(separatedBy: "runners busy ").last.flatMap { Int($0.prefix { $0.isNumber }) }
        #expect(busy.map { (1...100).contains($0) } == true, "\(last)")
        let evaluations = Self.evaluations(driver.output)
        // A random policy balances the pole for about 20 steps.
        #expect((evaluations.last ?? 0) >= 150, "evaluations \(evaluations)")
        #expect(FileManager.default.fileExists(atPath: folder + "/checkpoint.safetensors"))
    }

    /// A runner's process SIGKILLed mid-run is replaced by the cluster; its part of the
    /// iteration is sampled again, so the run ends at exactly its step count.
    @Test func aKilledRunnerIsReplacedAndTheStepCountStaysExact() async throws {
        let folder = try Self.folder("rollouts-fault")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(
            [
                "rl", "train", "--algo", "ppo", "--env", "cartpole", "--env-runners", "2", "--steps", "16384", "--eval-interval",
                "1024", "--eval-episodes", "2", "--out", folder,
            ], binary: "trading")
        let pids = Self.runnerPIDs(try await driver.waitForLine(startingWith: "Runners up", timeout: .seconds(120)))
        try #require(pids.count == 2)
        _ = try await driver.waitForLine(startingWith: "ppo CartPole-v1", timeout: .seconds(120))
        kill(pids[1], SIGKILL)
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let replaced = try #require(driver.line(startingWith: "Runner 1 replaced"), "\(driver.output)")
        let newPID = Self.runnerPIDs(replaced).first
        #expect(newPID != nil && newPID != pids[1] && newPID != pids[0], "\(replaced)")
        #expect(driver.line(startingWith: "Runner 0 replaced") == nil, "runner 0 was not killed: \(driver.output)")
        #expect(driver.output.contains { $0.contains("steps 16384/16384") }, "\(driver.output)")
        let rows = try String(contentsOfFile: folder + "/curve.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        let steps = rows.compactMap { $0.split(separator: ",").first.flatMap { Int($0) } }
        #expect(steps == Array(stride(from: 1024, through: 16384, by: 1024)), "curve.csv steps \(steps)")
    }

    /// The learner puts its weights into the object store once per update and each runner
    /// reads them there: with every link on TCP, the runners receive far less over their
    /// sockets than one copy of the weights per update (the calls carry only references).
    @Test func weightsReachTheRunnersThroughTheObjectStore() async throws {
        let folder = try Self.folder("rollouts-weights")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tcp = ["SHOAL_LOCAL_LINKS": "0"]
        let cluster = try await ClusterProcesses(cpus: 2, environment: tcp)
        defer { cluster.stop() }
        let steps = 8192
        let driver = try cluster.driver(
            [
                "rl", "train", "--algo", "ppo", "--env", "cartpole", "--env-runners", "2", "--steps", "\(steps)",
                "--eval-interval",
                "\(steps)", "--eval-episodes", "1", "--out", folder,
            ], binary: "trading", environment: tcp)
        let pids = Set(Self.runnerPIDs(try await driver.waitForLine(startingWith: "Runners up", timeout: .seconds(120))))
        var peak: [String: (pid: Int32, received: Int)] = [:]
        while driver.isRunning {
            for (key, value) in DistributedTrainingTests.socketBytes() where pids.contains(value.pid) {
                if value.received > (peak[key]?.received ?? -1) { peak[key] = value }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let parameters = try #require(
            driver.line(startingWith: "Policy:")?.split(separator: " ").dropFirst().first.flatMap { Int($0) })
        // The rl-zoo CartPole settings: 8 environments × 32 steps per update.
        let updates = steps / 256
        let oneCopyPerUpdate = updates * parameters * 4
        let received = peak.values.reduce(0) { $0 + $1.received }
        print(
            "weights: runners received \(received) B over their sockets; one copy of the weights per update is \(oneCopyPerUpdate) B"
        )
        #expect(!peak.isEmpty, "no sockets of the runners \(pids) seen")
        #expect(
            received < oneCopyPerUpdate / 4, "the runners received \(received) B, one copy per update is \(oneCopyPerUpdate) B")
    }
}

extension RolloutWorkerTests {
    /// SAC with 2 runners: their transitions feed the learner's replay buffer while it updates,
    /// and the run takes exactly its steps, with the episodes the runners finished counted.
    @Test func sacLearnsFromTransitionsOfTwoRunners() async throws {
        let folder = try Self.folder("rollouts-sac")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = folder + "/sac.json"
        try Data(#"{"learningStarts": 200, "batchSize": 16, "hidden": [16, 16]}"#.utf8).write(to: URL(fileURLWithPath: config))
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(
            [
                "rl", "train", "--algo", "sac", "--env", "pendulum", "--env-runners", "2", "--steps", "1000", "--eval-interval",
                "500",
                "--eval-episodes", "1", "--config", config, "--out", folder,
            ], binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let pids = Self.runnerPIDs(try #require(driver.line(startingWith: "Runners up")))
        #expect(pids.count == 2 && !pids.contains(driver.pid))
        // 2 runners × 500 steps of one Pendulum each: 2 episodes of 200 steps apiece.
        let last = try #require(driver.output.last { $0.contains("steps 1000/1000") }, "\(driver.output)")
        #expect(last.contains("episodes 4 "), "\(last)")
    }
}

extension RolloutWorkerTests {
    /// Rainbow with 2 runners: one-step transitions of discrete actions, joined into n-step
    /// ones in the learner per environment copy; the run takes exactly its steps and its
    /// checkpoint loads for evaluation.
    @Test func rainbowLearnsFromTransitionsOfTwoRunners() async throws {
        let folder = try Self.folder("rollouts-rainbow")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = folder + "/rainbow.json"
        try Data(#"{"learningStarts": 200, "batchSize": 16, "hidden": [16, 16], "atoms": 11}"#.utf8).write(
            to: URL(fileURLWithPath: config))
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(
            [
                "rl", "train", "--algo", "rainbow", "--env", "cartpole", "--env-runners", "2", "--envs-per-runner", "2",
                "--steps", "1000", "--eval-interval", "500", "--eval-episodes", "1", "--config", config, "--out", folder,
            ], binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let pids = Self.runnerPIDs(try #require(driver.line(startingWith: "Runners up")))
        #expect(pids.count == 2 && !pids.contains(driver.pid))
        let last = try #require(driver.output.last { $0.contains("steps 1000/1000") }, "\(driver.output)")
        #expect(last.contains("runners busy") && last.contains("learner"), "\(last)")
        #expect(FileManager.default.fileExists(atPath: folder + "/checkpoint.safetensors"))
    }
}

extension RolloutWorkerTests {
    /// Submitted as a job (`cluster submit -- trading rl train … --env-runners 2 --register`), the
    /// agent reaches the cluster's registry: its checkpoint as the artifact, the card's figures,
    /// and the lineage to the job, the data and the binary that trained it.
    @Test func aSubmittedRunRegistersItsAgentWithItsLineage() async throws {
        let folder = try Self.folder("rollouts-register")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let submit = try RunningProcess(
            binaryPath("cluster"),
            [
                "submit", "--address", cluster.address, "--job-id", "rl-agent", "--", binaryPath("trading"), "rl", "train",
                "--algo",
                "ppo", "--env", "cartpole", "--env-runners", "2", "--steps", "2048", "--eval-episodes", "2", "--out", folder,
                "--register", "cartpole-ppo", "--alias", "staging",
            ], environment: cluster.environment)
        #expect(try await submit.waitForExit(timeout: .seconds(300)) == 0, "\(submit.output)")
        #expect(submit.output.contains { $0.contains("Registered cartpole-ppo version 1 as staging") }, "\(submit.output)")
        #expect(submit.output.contains { $0.contains("Runners up") && $0.contains("(pid ") }, "\(submit.output)")
        let registry = try ModelRegistry(address: cluster.address, identity: "checker")
        let (version, artifact) = try registry.load(name: "cartpole-ppo", alias: "staging")
        #expect(artifact == Array(try Data(contentsOf: URL(fileURLWithPath: folder + "/checkpoint.safetensors"))))
        #expect(version.parameters["algorithm"] == "ppo" && version.parameters["runners"] == "2")
        #expect(version.metrics["steps"]?.last?.value == 2048 && version.metrics["evaluation_mean"] != nil)
        #expect(version.lineage.jobID == "rl-agent")
        #expect(version.lineage.codeSHA256 == (try ContentDigest.sha256(ofFile: binaryPath("trading"))))
        #expect(version.lineage.dataSHA256.count == 64)
    }
}

extension RolloutWorkerTests {
    /// The trading environment observing a registered hybrid model's features: the encoder
    /// comes from the registry, reaches the runners through the object store, and each runner
    /// encodes the bars it meets.
    @Test func runnersTradeOnTheFeaturesOfARegisteredEncoder() async throws {
        let folder = try Self.folder("rollouts-hybrid")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = folder + "/encoder.json"
        try Data(
            #"""
            {"model": {"convChannels": 8, "kernels": [3, 5], "heads": 2, "lstmHidden": 8, "lstmLayers": 1, "fusionSize": 16,
                       "dropout": 0.1},
             "data": {"bars": 3000, "steps": 16}, "batchSize": 16, "maxSteps": 10, "epochs": 1, "patience": 0}
            """#.utf8
        ).write(to: URL(fileURLWithPath: config))
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let encoder = try cluster.driver(
            ["model", "train", "--config", config, "--out", folder + "/encoder", "--register", "enc", "--alias", "staging"],
            binary: "trading")
        #expect(try await encoder.waitForExit(timeout: .seconds(300)) == 0, "\(encoder.output)")
        let arguments = [
            "rl", "train", "--algo", "ppo", "--env", "trading", "--features", "hybrid", "--bars", "3000", "--steps", "512",
            "--eval-interval", "512", "--env-runners", "2", "--out", folder + "/rl",
        ]
        let driver = try cluster.driver(arguments + ["--encoder", "enc@staging"], binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        #expect(driver.line(startingWith: "Encoder: enc version 1") != nil, "\(driver.output)")
        #expect(Self.runnerPIDs(driver.line(startingWith: "Runners up") ?? "").count == 2, "\(driver.output)")
        #expect(driver.output.contains { $0.contains("steps 512/512") }, "\(driver.output)")
        #expect(FileManager.default.fileExists(atPath: folder + "/rl/oos.json"))
        // Hybrid features without an encoder are a usage error; a registered model that is not a
        // hybrid model is refused with its name.
        let missing = try cluster.driver(arguments, binary: "trading")
        #expect(try await missing.waitForExit(timeout: .seconds(60)) == 64)
        let artifact = folder + "/blob.bin"
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: artifact))
        let registry = try ModelRegistry(address: cluster.address, identity: "tester")
        _ = try registry.register(model: "blob", artifactAt: artifact, format: "binary")
        let wrong = try cluster.driver(arguments + ["--encoder", "blob"], binary: "trading")
        #expect(try await wrong.waitForExit(timeout: .seconds(60)) == 1)
        #expect(wrong.output.contains { $0.contains("blob version 1 is not a hybrid model") }, "\(wrong.output)")
    }
}

extension RolloutWorkerTests {
    /// `--algo ensemble`: the members train at once, one actor (process) each; each is judged
    /// on the validation span after costs beside cash, and the out-of-sample report shows every
    /// member, the ensemble, buy-and-hold and cash with what each traded.
    @Test func ensembleMembersTrainAtOnceAsActorsAndAreJudgedBesideCash() async throws {
        let folder = try Self.folder("rollouts-ensemble")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Two CPUs for three members: the third waits for the first to finish.
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(
            ["rl", "train", "--algo", "ensemble", "--env", "trading", "--steps", "400", "--bars", "3000", "--out", folder],
            binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let trained = driver.output.filter { $0.hasPrefix("Member ") && $0.contains(" trained on ") }
        #expect(trained.count == 3, "\(driver.output)")
        let pids = Set(trained.compactMap { Int32($0.components(separatedBy: "(pid ").last?.prefix { $0.isNumber } ?? "") })
        #expect(pids.count == 3 && !pids.contains(driver.pid), "each member in a process of its own: \(trained)")
        #expect(driver.output.filter { $0.hasPrefix("Member ") && $0.contains("on the validation span") }.count == 3)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/oos.json")))
        let rows = try #require(report as? [String: [String: Double]])
        #expect(rows["cash"]?["return"] == 0 && rows["cash"]?["trades"] == 0)
        #expect(rows["buy and hold"]?["trades"] == 1)
        #expect(rows["ensemble"]?["turnover_per_bar"] != nil && rows.count == 6, "\(rows.keys.sorted())")
    }

    /// `--algo ensemble --env-runners 1`: each member starts a rollout worker of its own (a
    /// connection of its own to the cluster, a job of its own); members take 2 CPUs each, so 2
    /// of the 3 train at once on 4 CPUs, and every worker ends with its member.
    @Test func ensembleMembersTrainWithRolloutWorkersOfTheirOwn() async throws {
        let folder = try Self.folder("rollouts-ensemble-runners")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cluster = try await ClusterProcesses(cpus: 4)
        defer { cluster.stop() }
        let driver = try cluster.driver(
            [
                "rl", "train", "--algo", "ensemble", "--env", "trading", "--steps", "400", "--bars", "3000", "--env-runners", "1",
                "--out", folder,
            ], binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        #expect(driver.output.contains("2 member(s) at a time on 4 free CPU(s)."), "\(driver.output)")
        let trained = driver.output.filter { $0.hasPrefix("Member ") && $0.contains("sampled by 1 worker(s) of its own") }
        #expect(trained.count == 3, "\(driver.output)")
        let probe = try await Cluster.connect(address: cluster.address)
        let status = try await probe.status()
        await probe.shutdown()
        // Alive now: only the probe's own job.
        #expect(status.jobs.filter(\.alive).count == 1, "the members' own jobs ended with them: \(status.jobs)")
    }
}
