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
        @Option(
            help: "Starting configuration: dqn (rainbow with every part off, Stable-Baselines3's DQN defaults), sb3 (ppo with Stable-Baselines3's defaults).")
        var preset: String?
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
            let setup = try RLSetup(
                algorithm: algo, environment: env, seed: seed, steps: steps, configData: configData, preset: preset)
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
    /// Settings that may be absent from an encoded configuration (nil by default).
    static let optionalFields: Set<String> = ["valueClipRange", "targetEntropy"]

    let agent: any Agent
    let totalSteps: Int
    let threshold: Double?
    let train: (Int?, Int, Double?, (String) -> Void) -> LearningCurve

    init(
        algorithm: RLCommand.Algorithm, environment: RLCommand.EnvironmentName, seed: UInt64, steps: Int?, configData: Data?,
        preset: String?
    ) throws {
        if let preset, !["dqn", "sb3"].contains(preset) { throw ValidationError("unknown preset \(preset): dqn (rainbow), sb3 (ppo)") }
        // A configuration file names only the fields it changes; the rest keep their defaults.
        func decode<Config: Codable>(_ type: Config.Type, default value: Config) throws -> Config {
            guard let configData else { return value }
            guard let given = try? JSONSerialization.jsonObject(with: configData) as? [String: Any] else {
                throw ValidationError("the configuration must be a JSON object of \(algorithm.rawValue) fields")
            }
            var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as? [String: Any] ?? [:]
            if let unknown = given.keys.sorted().first(where: { merged[$0] == nil && !Self.optionalFields.contains($0) }) {
                throw ValidationError("\(algorithm.rawValue) has no setting '\(unknown)'")
            }
            merged.merge(given) { $1 }
            do {
                return try JSONDecoder().decode(Config.self, from: JSONSerialization.data(withJSONObject: merged))
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
            let preset = preset == "sb3" ? PPO<CartPole>.Config.stableBaselinesDefaults : PPO<CartPole>.Config()
            var config = try decode(PPO<CartPole>.Config.self, default: preset)
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
        case (.rainbow, .cartpole):
            let preset = preset == "dqn" ? Rainbow<CartPole>.Config.stableBaselinesDQN : Rainbow<CartPole>.Config()
            var config = try decode(Rainbow<CartPole>.Config.self, default: preset)
            config.seed = seed
            config.totalSteps = steps ?? config.totalSteps
            let agent = try Rainbow(config: config, environment: CartPole())
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, 475)
            train = run(agent, "CartPole-v1", CartPole(), config.totalSteps, interval: 2000)
        case (.sac, .pendulum):
            var config = try decode(SAC<Pendulum>.Config.self, default: SAC<Pendulum>.Config())
            config.seed = seed
            let total = steps ?? 20_000
            let agent = try SAC(config: config, environment: Pendulum())
            (self.agent, totalSteps, threshold) = (agent, total, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), total, interval: 1000)
        case (.td3, .pendulum):
            var defaults = TD3<Pendulum>.Config()
            defaults.gamma = 0.98
            defaults.learningStarts = 1000
            var config = try decode(TD3<Pendulum>.Config.self, default: defaults)
            config.seed = seed
            let total = steps ?? 20_000
            let agent = try TD3(config: config, environment: Pendulum())
            (self.agent, totalSteps, threshold) = (agent, total, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), total, interval: 1000)
        default:
            throw ValidationError("\(algorithm.rawValue) on \(environment.rawValue) is not available")
        }
    }
}
