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
            abstract: "Train an agent with a progress line; save its learning curve (CSV and PNG) and checkpoint.")
        @Option(help: "Algorithm: \(Algorithm.allCases.map(\.rawValue).joined(separator: ", ")).") var algo: Algorithm
        @Option(help: "Environment: \(EnvironmentName.allCases.map(\.rawValue).joined(separator: ", ")).") var env: EnvironmentName
        @Option(help: "Environment steps to train for (default: the algorithm's budget for the environment).") var steps: Int?
        @Option(help: "Seed.") var seed: UInt64 = 0
        @Option(help: "Evaluate every this many steps.") var evalInterval: Int?
        @Option(help: "Evaluation episodes.") var evalEpisodes = 10
        @Option(help: "Stop once the evaluation mean reaches this.") var stopAt: Double?
        @Option(help: "A JSON file with the algorithm's configuration (its Config's fields).") var config: String?
        @Option(help: "Threads (ShoalTensor's loops and OpenBLAS).") var threads = 1
        @Option(help: "Output folder: curve.csv, curve.png, checkpoint.safetensors.") var out = "rl-run"

        func run() async throws {
            guard threads > 0, evalEpisodes > 0 else { throw ValidationError("--threads and --eval-episodes must be above 0") }
            Compute.setThreads(threads)
            let configData: Data?
            if let config {
                guard let data = FileManager.default.contents(atPath: config) else { throw ValidationError("cannot read \(config)") }
                configData = data
            } else {
                configData = nil
            }
            let setup = try RLSetup(algorithm: algo, environment: env, seed: seed, steps: steps, configData: configData)
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
                let reached = curve.firstReaching(threshold).map { "after \($0) steps" } ?? "not within \(setup.agent.stepsDone) steps"
                print("Goal \(threshold): reached \(reached).")
            }
            print("Wrote \(out)/curve.csv, \(out)/curve.png and \(out)/checkpoint.safetensors.")
        }
    }
}

/// An agent of the chosen algorithm on the chosen environment, with its default budget.
struct RLSetup {
    let agent: any Agent
    let totalSteps: Int
    let threshold: Double?
    let train: (Int?, Int, Double?, (String) -> Void) -> LearningCurve

    init(algorithm: RLCommand.Algorithm, environment: RLCommand.EnvironmentName, seed: UInt64, steps: Int?, configData: Data?) throws {
        func decode<Config: Decodable>(_ type: Config.Type, default value: Config) throws -> Config {
            guard let configData else { return value }
            do {
                return try JSONDecoder().decode(Config.self, from: configData)
            } catch {
                throw ValidationError("the configuration is not a \(algorithm.rawValue) configuration: \(error)")
            }
        }
        func run<Base: Environment>(_ agent: any Agent, _ name: String, _ evaluation: Base, _ total: Int, interval: Int) -> (
            Int?, Int, Double?, (String) -> Void
        ) -> LearningCurve {
            { requestedInterval, episodes, stopAt, progress in
                TrainingRun(
                    totalSteps: total, evaluationInterval: requestedInterval ?? interval, evaluationEpisodes: episodes,
                    stopAt: stopAt, environmentName: name, seed: seed, evaluationEnvironment: evaluation
                ).run(agent, progress: progress)
            }
        }
        switch (algorithm, environment) {
        case (.ppo, .cartpole):
            var config = try decode(PPO<CartPole>.Config.self, default: PPO<CartPole>.Config())
            config.seed = seed
            config.totalSteps = steps ?? config.totalSteps
            let agent = try PPO(config: config) { _ in CartPole() }
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, 475)
            train = run(agent, "CartPole-v1", CartPole(), config.totalSteps, interval: 2048)
        case (.ppo, .pendulum):
            var config = try decode(PPO<Pendulum>.Config.self, default: PPO<Pendulum>.Config.stableBaselinesDefaults)
            config.seed = seed
            config.totalSteps = steps ?? 100_000
            let agent = try PPO(config: config) { _ in Pendulum() }
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), config.totalSteps, interval: 4096)
        default:
            throw ValidationError("\(algorithm.rawValue) on \(environment.rawValue) is not available")
        }
    }
}
