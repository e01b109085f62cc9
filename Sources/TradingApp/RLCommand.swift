import ArgumentParser
import Foundation
import Shoal
import ShoalPlot
import ShoalRL
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
            let setup = try RLSetup(
                algorithm: algo, environment: env, seed: seed, steps: steps, configData: configData, preset: preset,
                market: market)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            print("Training \(algo.rawValue) on \(env.rawValue), seed \(seed), \(setup.totalSteps) steps.")
            let curve = setup.train(evalInterval, evalEpisodes, stopAt) { line in
                print(line)
                flushStandardOutput()
            }
            try curve.writeCSV(to: "\(out)/curve.csv")
            try curve.plot(threshold: setup.threshold).write(to: "\(out)/curve.png")
            try setup.agent.save(to: "\(out)/checkpoint.safetensors")
            if let threshold = setup.threshold {
                let reached =
                    curve.firstReaching(threshold).map { "after \($0) steps" } ?? "not within \(setup.agent.stepsDone) steps"
                print("Goal \(threshold): reached \(reached).")
            }
            print("Wrote \(out)/curve.csv, \(out)/curve.png and \(out)/checkpoint.safetensors.")
            if let report = setup.outOfSample {
                try report(out)
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
}
