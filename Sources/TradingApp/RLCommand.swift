import ArgumentParser
import Foundation
import Shoal
import ShoalPlot
import ShoalRL
import ShoalRollouts
import ShoalTensor

/// `trading rl`: reinforcement learning on the classic-control and trading environments.
struct RLCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rl",
        abstract: "Train PPO, SAC, TD3, Rainbow DQN or the ensemble on CartPole, Pendulum or the trading environments.",
        subcommands: [Train.self]
    )

    enum Algorithm: String, CaseIterable, ExpressibleByArgument {
        case ppo, sac, td3, rainbow, ensemble
    }

    enum EnvironmentName: String, CaseIterable, ExpressibleByArgument {
        case cartpole, pendulum, trading, portfolio
    }

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train an agent with a progress line; save its learning curve (CSV and PNG) and checkpoint.",
            discussion: """
                On the trading and portfolio environments the synthetic market is split 70/15/15 in time: agents \
                train on the first part, the learning curve evaluates on the second, and the last is the \
                out-of-sample test whose Sharpe ratios (costs included) are printed beside buy-and-hold's and \
                written to oos.json. The ensemble trains its members (PPO, SAC and TD3; PPO and Rainbow with \
                --discrete), then trades the test part with Thompson-sampled weights (weights.csv, equity.png).
                """)
        @Option(help: "Algorithm: \(Algorithm.allCases.map(\.rawValue).joined(separator: ", ")).") var algo: Algorithm
        @Option(help: "Environment: \(EnvironmentName.allCases.map(\.rawValue).joined(separator: ", ")).") var env:
            EnvironmentName
        @Option(help: "Environment steps to train for (default: the algorithm's budget for the environment).") var steps: Int?
        @Option(help: "Seed.") var seed: UInt64 = 0
        @Option(help: "Evaluate every this many steps.") var evalInterval: Int?
        @Option(help: "Evaluation episodes.") var evalEpisodes = 10
        @Option(help: "Stop once the evaluation mean reaches this.") var stopAt: Double?
        @Option(help: "A JSON file with the algorithm's settings to change (fields of its Config).") var config: String?
        @Option(
            help:
                "Starting configuration: dqn (rainbow with every part off: Stable-Baselines3's DQN defaults), sb3 (ppo with Stable-Baselines3's defaults)."
        )
        var preset: String?
        @OptionGroup var market: MarketOptions
        @Option(help: "Threads (ShoalTensor's loops and OpenBLAS).") var threads = 1
        @Option(help: "Output folder: curve.csv, curve.png, checkpoint.safetensors (and oos.json for trading).") var out =
            "rl-run"
        @Option(
            help:
                "Rollout workers: actors on the cluster that step the environments while this process learns (PPO on cartpole and pendulum)."
        )
        var envRunners: Int?
        @Option(help: "Environments each rollout worker steps (default: the algorithm's environments split among the workers).")
        var envsPerRunner: Int?
        @Option(help: "CPUs each rollout worker holds.") var cpusPerRunner = 1
        @Option(help: "Times a rollout worker is replaced after its process dies.") var maxRunnerRestarts = 3
        @Option(help: "The cluster's head (default: SHOAL_ADDRESS, this machine's session, or an embedded cluster).")
        var address: String?
        @Option(help: "Register the trained agent in the cluster's model registry under this name (with its lineage).")
        var register: String?
        @Option(help: "Point this alias (e.g. staging) at the registered version.") var alias: String?
        @Option(help: "Who registers (default: the user).") var identity: String?

        func run() async throws {
            guard threads > 0, evalEpisodes > 0 else { throw ValidationError("--threads and --eval-episodes must be above 0") }
            if let steps, steps <= 0 { throw ValidationError("--steps must be above 0") }
            Compute.setThreads(threads)
            let configData: Data?
            if let config {
                guard let data = FileManager.default.contents(atPath: config) else {
                    throw CommandFailure("cannot read \(config)")
                }
                configData = data
            } else {
                configData = nil
            }
            if envRunners == nil && envsPerRunner != nil { throw ValidationError("--envs-per-runner needs --env-runners") }
            if alias != nil, register == nil {
                throw ValidationError("--alias names the version --register makes: add --register NAME")
            }
            // Before training: a registration that cannot happen should not cost a run.
            let registryAddress = try register.map { _ in try self.findRegistry() }
            guard cpusPerRunner >= 1, maxRunnerRestarts >= 0 else {
                throw ValidationError("--cpus-per-runner must be at least 1 and --max-runner-restarts not negative")
            }
            var encoder: RegisteredEncoder?
            switch (market.features, market.encoder) {
            case (.hybrid, nil): throw ValidationError("--features hybrid needs --encoder NAME[:VERSION|:ALIAS|@ALIAS]")
            case (.basic, _?): throw ValidationError("--encoder applies to --features hybrid")
            case (.hybrid, let reference?):
                let registry = try ModelRegistry(address: try findRegistry(), identity: identity ?? ModelRegistry.defaultIdentity)
                let fetched = try RegisteredEncoder.fetch(reference, from: registry)
                print(
                    "Encoder: \(fetched.name) version \(fetched.version) of the registry (\(fetched.config.fusionSize) fused features)."
                )
                encoder = fetched
            default: break
            }
            let setup = try RLSetup(
                algorithm: algo, environment: env, seed: seed, steps: steps, configData: configData, preset: preset,
                market: market, runners: envRunners.map { RLSetup.Runners(count: $0, environmentsPerRunner: envsPerRunner) },
                encoder: encoder)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            print("Training \(algo.rawValue) on \(env.rawValue), seed \(seed), \(setup.totalSteps) steps.")
            let show: (String) -> Void = { line in
                print(line)
                flushStandardOutput()
            }
            let curve: LearningCurve
            if let trainOnRunners = setup.trainOnRunners, envRunners != nil || setup.train == nil {
                curve = try await trainOnCluster(runners: envRunners ?? 0, trainOnRunners, show)
            } else if let train = setup.train {
                curve = train(evalInterval, evalEpisodes, stopAt, show)
            } else {
                throw CommandFailure("\(algo.rawValue) on \(env.rawValue) has no way to train")
            }
            try curve.writeCSV(to: "\(out)/curve.csv")
            try curve.plot(threshold: setup.threshold).write(to: "\(out)/curve.png")
            try setup.agent.save(to: "\(out)/checkpoint.safetensors")
            if let recipe = setup.recipe {
                // What the backtester needs to run the agent again (trading backtest run --strategy agent).
                let encoderOutput = JSONEncoder()
                encoderOutput.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoderOutput.encode(recipe).write(to: URL(fileURLWithPath: "\(out)/\(TradingAgentRecipe.fileName)"))
                if let encoder { try Data(encoder.artifact).write(to: URL(fileURLWithPath: "\(out)/encoder.safetensors")) }
            }
            if let threshold = setup.threshold {
                let reached =
                    curve.firstReaching(threshold).map { "after \($0) steps" } ?? "not within \(setup.agent.stepsDone) steps"
                print("Goal \(threshold): reached \(reached).")
            }
            print("Wrote \(out)/curve.csv, \(out)/curve.png and \(out)/checkpoint.safetensors.")
            var outOfSample: [String: Double] = [:]
            if let report = setup.outOfSample {
                try report(out)
                let written = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/oos.json")))
                if let mine = (written as? [String: [String: Double]])?[setup.agent.name] {
                    for (key, value) in mine { outOfSample["test_\(key)"] = value }
                }
            }
            if let register, let registryAddress {
                let registry = try ModelRegistry(address: registryAddress, identity: identity ?? ModelRegistry.defaultIdentity)
                let record = TrainedAgentRecord(
                    name: register, checkpointPath: "\(out)/checkpoint.safetensors", algorithm: algo.rawValue,
                    environment: env.rawValue, configJSON: setup.configJSON, curve: curve, metrics: outOfSample,
                    dataSHA256: ContentDigest.sha256(of: Array(setup.dataDescription.utf8)),
                    jobID: ProcessInfo.processInfo.environment["SHOAL_JOB_ID"] ?? "", runners: envRunners ?? 0)
                let version = try record.register(in: registry, alias: alias)
                print(
                    "Registered \(register) version \(version.version)\(alias.map { " as \($0)" } ?? "") (data \(record.dataSHA256.prefix(12)), "
                        + "job \(record.jobID.isEmpty ? "none" : record.jobID)).")
            }
        }

        /// The registry's cluster: --address, SHOAL_ADDRESS, or this machine's session.
        func findRegistry() throws -> String {
            guard let found = Session().headAddress(given: address) else {
                throw CommandFailure(
                    "--register and --encoder need a running cluster's model registry: start one (cluster start --head) or give --address"
                )
            }
            return found
        }

        /// Trains with `runners` rollout workers on the cluster (an embedded one when none runs).
        func trainOnCluster(
            runners: Int, _ train: RLSetup.RunnerTraining, _ show: @escaping (String) -> Void
        ) async throws -> LearningCurve {
            let cluster = try await Cluster.connect(
                address: address, localCPUs: max(ProcessInfo.processInfo.activeProcessorCount, runners * cpusPerRunner))
            var options = EnvRunnerOptions(runners: max(1, runners))
            let place = cluster.isEmbedded ? "an embedded cluster" : "the cluster at \(cluster.address)"
            print(
                runners > 0
                    ? "Sampling on \(place): \(runners) rollout worker(s) of \(cpusPerRunner) CPU(s), weights through the object store."
                    : "Training on \(place).")
            options.cpusPerRunner = cpusPerRunner
            options.maxRestarts = maxRunnerRestarts
            let events: @Sendable (EnvRunnerEvent) -> Void = { event in
                switch event {
                case .started(let nodes, let pids):
                    print(
                        "Runners up: "
                            + zip(nodes, pids).enumerated().map { "\($0) on \($1.0) (pid \($1.1))" }.joined(separator: ", ") + "."
                    )
                case .runnerFailed(let index, let iteration, let reason):
                    print(
                        "Runner \(index) failed in iteration \(iteration) (\(reason)); its replacement samples that part again.")
                case .runnerReplaced(let index, let iteration, let node, let pid):
                    print("Runner \(index) replaced: now on \(node) (pid \(pid)) from iteration \(iteration).")
                }
                flushStandardOutput()
            }
            do {
                let curve = try await train(cluster, options, evalInterval, evalEpisodes, stopAt, show, events)
                await cluster.shutdown()
                return curve
            } catch {
                await cluster.shutdown()
                throw error
            }
        }
    }
}

/// The synthetic market the trading environments trade.
struct MarketOptions: ParsableArguments {
    @Option(help: "Bars of synthetic market (trading and portfolio environments).") var bars = 20_000
    @Option(help: "The synthetic market's seed.") var marketSeed: UInt64 = 42
    @Option(help: "Trading reward: \(TradingReward.allCases.map(\.rawValue).joined(separator: ", ")).") var reward =
        "riskAdjusted"
    @Flag(help: "The trading environment's discrete Sell/Hold/Buy variant.") var discrete = false
    @Option(help: "What the trading environment observes: basic (the standard indicators) or hybrid (an encoder's features).")
    var features: TradingMarketSpec.Features = .basic
    @Option(
        help:
            "With --features hybrid: the registry's hybrid model to encode bars with, NAME, NAME:VERSION, NAME:ALIAS or NAME@ALIAS."
    )
    var encoder: String?
    @Option(help: "With --features hybrid: Monte Carlo dropout passes for the encoder's uncertainty.") var encoderPasses = 10
    @Option(help: "Trading environment: position changes smaller than this fraction of equity are not traded.")
    var rebalanceBand = 0.0
}

extension TradingMarketSpec.Features: ExpressibleByArgument {}
