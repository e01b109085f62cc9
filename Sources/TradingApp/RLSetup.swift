import ArgumentParser
import Foundation
import ShoalMarket
import ShoalPlot
import ShoalRL
import ShoalRollouts
import Shoal

/// An agent of the chosen algorithm on the chosen environment, with its default budget, how
/// to train it, and for the trading environments the out-of-sample report.
struct RLSetup {
    /// Settings that may be absent from an encoded configuration (nil by default).
    static let optionalFields: Set<String> = ["valueClipRange", "targetEntropy", "temperature", "episodeLength"]

    let agent: any Agent
    let totalSteps: Int
    let threshold: Double?
    /// Trains in this process (nil when the run needs the cluster: the ensemble).
    let train: ((Int?, Int, Double?, (String) -> Void) -> LearningCurve)?
    /// Writes the out-of-sample comparison into a folder (trading environments only).
    var outOfSample: ((String) throws -> Void)?
    /// Trains with rollout workers on the cluster (set when runners were asked for).
    var trainOnRunners: RunnerTraining?
    /// The algorithm's configuration as JSON, for the model card.
    var configJSON = "{}"
    /// What rebuilds the agent on its market (the trading environment only).
    var recipe: TradingAgentRecipe?
    /// What the agent trains on, described: its SHA-256 is the data's identity in the lineage.
    var dataDescription: String

    /// Rollout workers asked for on the command line.
    struct Runners {
        var count: Int
        var environmentsPerRunner: Int?
    }

    /// How a run on rollout workers is driven: the cluster, the workers' options, the
    /// evaluation interval, episodes and goal, where progress lines go, and the workers' events.
    typealias RunnerTraining = (
        Cluster, EnvRunnerOptions, Int?, Int, Double?, (String) -> Void, @escaping @Sendable (EnvRunnerEvent) -> Void
    ) async throws -> LearningCurve

    /// With rollout workers, PPO's environments are the workers' together: `--envs-per-runner`
    /// each, or the configuration's split evenly.
    static func spread<Base: Environment>(_ config: inout PPO<Base>.Config, over runners: Runners?) throws {
        guard let runners else { return }
        guard runners.count >= 1 else { throw ValidationError("--env-runners must be at least 1") }
        if let perRunner = runners.environmentsPerRunner {
            guard perRunner >= 1 else { throw ValidationError("--envs-per-runner must be at least 1") }
            config.environments = runners.count * perRunner
        } else if config.environments % runners.count != 0 {
            throw ValidationError(
                "\(config.environments) environments do not split evenly into \(runners.count) runners: give --envs-per-runner")
        }
    }

    init(
        algorithm: RLCommand.Algorithm, environment: RLCommand.EnvironmentName, seed: UInt64, steps: Int?, configData: Data?,
        preset: String?, market: MarketOptions, runners: Runners? = nil, encoder: RegisteredEncoder? = nil
    ) throws {
        if let preset, !["dqn", "sb3"].contains(preset) {
            throw ValidationError("unknown preset \(preset): dqn (rainbow), sb3 (ppo)")
        }
        // A configuration file names only the fields it changes; the rest keep their defaults.
        func decode<Config: Codable>(_ type: Config.Type, default value: Config) throws -> Config {
            guard let configData else { return value }
            guard let given = try? JSONSerialization.jsonObject(with: configData) as? [String: Any] else {
                throw CommandFailure("the configuration must be a JSON object of \(algorithm.rawValue) fields")
            }
            var merged = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value)) as? [String: Any] ?? [:]
            if let unknown = given.keys.sorted().first(where: { merged[$0] == nil && !Self.optionalFields.contains($0) }) {
                throw CommandFailure("\(algorithm.rawValue) has no setting '\(unknown)'")
            }
            merged.merge(given) { $1 }
            do {
                return try JSONDecoder().decode(Config.self, from: JSONSerialization.data(withJSONObject: merged))
            } catch {
                throw CommandFailure("the configuration is not a \(algorithm.rawValue) configuration: \(error)")
            }
        }
        func run<Base: Environment>(
            _ agent: any Agent, _ name: String, _ evaluation: Base, _ total: Int, interval: Int
        ) -> (
            Int?, Int, Double?, (String) -> Void
        ) -> LearningCurve {
            { requestedInterval, episodes, stopAt, progress in
                TrainingRun(
                    totalSteps: total, evaluationInterval: requestedInterval ?? interval, evaluationEpisodes: episodes,
                    stopAt: stopAt, environmentName: name, seed: seed, evaluationEnvironment: evaluation
                ).run(agent, progress: progress)
            }
        }
        outOfSample = nil
        trainOnRunners = nil
        func json<Config: Encodable>(_ config: Config) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return (try? encoder.encode(config)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
        dataDescription = #"{"environment": "\#(environment.rawValue)"}"#
        if market.features == .hybrid && environment != .trading {
            throw ValidationError("--features hybrid applies to the trading environment")
        }
        let onWorkers: Set<String> = [
            "ppo/cartpole", "ppo/pendulum", "rainbow/cartpole", "sac/pendulum", "td3/pendulum", "ppo/trading", "sac/trading",
            "td3/trading", "rainbow/trading", "ensemble/trading",
        ]
        if runners != nil && !onWorkers.contains("\(algorithm.rawValue)/\(environment.rawValue)") {
            throw ValidationError(
                "--env-runners: rollout workers run \(onWorkers.sorted().joined(separator: ", ")) so far, not \(algorithm.rawValue)/\(environment.rawValue)"
            )
        }
        switch (algorithm, environment) {
        case (.ppo, .cartpole):
            let start = preset == "sb3" ? PPO<CartPole>.Config.stableBaselinesDefaults : PPO<CartPole>.Config()
            var config = try decode(PPO<CartPole>.Config.self, default: start)
            config.seed = seed
            config.totalSteps = steps ?? config.totalSteps
            try Self.spread(&config, over: runners)
            let agent = try PPO(config: config) { _ in CartPole() }
            configJSON = json(config)
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, 475)
            train = run(agent, "CartPole-v1", CartPole(), config.totalSteps, interval: 2048)
            if runners != nil { trainOnRunners = Self.onRunners(agent, .cartpole, CartPole(), interval: 2048, seed: seed) }
        case (.ppo, .pendulum):
            var config = try decode(PPO<Pendulum>.Config.self, default: PPO<Pendulum>.Config.stableBaselinesDefaults)
            config.seed = seed
            config.totalSteps = steps ?? 100_000
            try Self.spread(&config, over: runners)
            let agent = try PPO(config: config) { _ in Pendulum() }
            configJSON = json(config)
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), config.totalSteps, interval: 4096)
            if runners != nil { trainOnRunners = Self.onRunners(agent, .pendulum, Pendulum(), interval: 4096, seed: seed) }
        case (.rainbow, .cartpole):
            let start = preset == "dqn" ? Rainbow<CartPole>.Config.stableBaselinesDQN : Rainbow<CartPole>.Config()
            var config = try decode(Rainbow<CartPole>.Config.self, default: start)
            config.seed = seed
            config.totalSteps = steps ?? config.totalSteps
            let agent = try Rainbow(config: config, environment: CartPole())
            configJSON = json(config)
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, 475)
            train = run(agent, "CartPole-v1", CartPole(), config.totalSteps, interval: 2000)
            if runners != nil {
                trainOnRunners = Self.offPolicyOnRunners(
                    agent, .cartpole, CartPole(), total: config.totalSteps, interval: 2000, seed: seed,
                    environmentsPerRunner: runners?.environmentsPerRunner)
            }
        case (.sac, .pendulum):
            var config = try decode(SAC<Pendulum>.Config.self, default: SAC<Pendulum>.Config())
            config.seed = seed
            let total = steps ?? 20_000
            let agent = try SAC(config: config, environment: Pendulum())
            configJSON = json(config)
            (self.agent, totalSteps, threshold) = (agent, total, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), total, interval: 1000)
            if runners != nil {
                trainOnRunners = Self.offPolicyOnRunners(
                    agent, .pendulum, Pendulum(), total: total, interval: 1000, seed: seed,
                    environmentsPerRunner: runners?.environmentsPerRunner)
            }
        case (.td3, .pendulum):
            var start = TD3<Pendulum>.Config()
            start.gamma = 0.98
            start.learningStarts = 1000
            var config = try decode(TD3<Pendulum>.Config.self, default: start)
            config.seed = seed
            let total = steps ?? 20_000
            let agent = try TD3(config: config, environment: Pendulum())
            configJSON = json(config)
            (self.agent, totalSteps, threshold) = (agent, total, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), total, interval: 1000)
            if runners != nil {
                trainOnRunners = Self.offPolicyOnRunners(
                    agent, .pendulum, Pendulum(),
                    total: total, interval: 1000, seed: seed, environmentsPerRunner: runners?.environmentsPerRunner)
            }
        case (_, .trading), (_, .portfolio):
            guard configData == nil, preset == nil else {
                throw ValidationError("--config and --preset apply to the classic-control environments")
            }
            let trading = try TradingSetup(
                algorithm: algorithm, environment: environment, seed: seed, steps: steps, market: market, encoder: encoder,
                runners: runners)
            trainOnRunners = trading.trainOnRunners
            (agent, totalSteps, threshold) = (trading.agent, trading.totalSteps, nil)
            train = trading.train
            outOfSample = trading.report
            configJSON = json(["algorithm": algorithm.rawValue, "reward": market.reward, "discrete": "\(market.discrete)"])
            dataDescription = trading.dataDescription
            recipe = trading.recipe
        default:
            throw ValidationError("\(algorithm.rawValue) on \(environment.rawValue) is not available")
        }
    }
}

/// The trading and portfolio environments on a synthetic market split in time, agents for
/// them, and the out-of-sample report.
struct TradingSetup {
    let agent: any Agent
    let totalSteps: Int
    /// Trains in this process (nil for the ensemble, whose members train on the cluster).
    let train: ((Int?, Int, Double?, (String) -> Void) -> LearningCurve)?
    let report: (String) throws -> Void
    /// The market the agent trades: its generator's settings and its prices' SHA-256.
    let dataDescription: String
    /// What rebuilds the agent on its market (the trading environment only).
    var recipe: TradingAgentRecipe?
    /// Trains with rollout workers (the trading environment, when asked for).
    var trainOnRunners: RLSetup.RunnerTraining?

    /// One bar a minute, 390 a trading day, 252 days a year.
    static let barsPerYear = 252.0 * 390

    /// - Parameter encoder: the hybrid model whose features the trading environment observes
    ///   (with `--features hybrid`).
    init(
        algorithm: RLCommand.Algorithm, environment: RLCommand.EnvironmentName, seed: UInt64, steps: Int?, market: MarketOptions,
        encoder: RegisteredEncoder? = nil, runners: RLSetup.Runners? = nil
    ) throws {
        trainOnRunners = nil
        guard let reward = TradingReward(rawValue: market.reward) else {
            throw ValidationError(
                "unknown reward \(market.reward): \(TradingReward.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard market.bars >= 2_000 else {
            throw ValidationError("--bars must be at least 2000 for a train/validation/test split")
        }
        let total = steps ?? (algorithm == .ppo || algorithm == .rainbow ? 100_000 : 20_000)
        let name = environment == .portfolio ? "portfolio" : "trading"

        if environment == .portfolio {
            guard runners == nil, market.features == .basic else {
                throw ValidationError("the portfolio environment runs in one process on basic features")
            }
            var marketConfig = SyntheticMarket.Config()
            marketConfig.seed = market.marketSeed
            marketConfig.symbols = ["AAA", "BBB", "CCC", "DDD"]
            let series = try SyntheticMarket(config: marketConfig).generate(bars: market.bars).series
            let prices = series.flatMap(\.close).withUnsafeBytes { ContentDigest.sha256(of: $0) }
            dataDescription =
                #"{"market": "synthetic", "seed": \#(market.marketSeed), "bars": \#(market.bars), "symbols": \#(series.count), "prices_sha256": "\#(prices)"}"#
            let trainEnd = market.bars * 70 / 100
            let validationEnd = market.bars * 85 / 100
            let features = try series.map { try MarketFeatures.basic($0, trainingBars: trainEnd) }
            let first = features.map(\.firstComplete).max() ?? 0
            let (trainSpan, validationSpan, testSpan) = (first..<trainEnd, trainEnd..<validationEnd, validationEnd..<market.bars)
            var config = PortfolioEnvironment.Config()
            config.reward = reward
            let trainEnvironment = try PortfolioEnvironment(assets: features, span: trainSpan, config: config, seed: seed)
            var whole = config
            whole.episodeLength = nil
            let validation = try PortfolioEnvironment(assets: features, span: validationSpan, config: whole, seed: seed)
            let test = try PortfolioEnvironment(assets: features, span: testSpan, config: whole, seed: seed)
            let agent = try Self.marketAgent(algorithm, trainEnvironment, seed: seed, total: total)
            self.agent = agent
            totalSteps = total
            train = Self.run(agent, name, validation, total, seed: seed)
            let equal = [Float](repeating: 1, count: features.count) + [0]
            report = { folder in
                try Self.writeReport(
                    [
                        (agent.name, OutOfSample.run(of: agent, on: test)),
                        ("equal weights", OutOfSample.run(on: test) { _ in equal }),
                    ],
                    weights: nil, to: folder)
            }
            return
        }

        // The trading environment as its rollout workers build it too.
        var spec = TradingMarketSpec()
        spec.marketSeed = market.marketSeed
        spec.bars = market.bars
        spec.reward = reward
        spec.discrete = market.discrete
        spec.features = market.features
        spec.encoder = encoder?.config
        spec.encoderPasses = market.encoderPasses
        spec.rebalanceBand = market.rebalanceBand
        let built = try spec.build(encoderWeights: try encoder?.weights(), seed: seed)
        let (trainEnvironment, validation, test) = (built.train, built.validation, built.test)
        dataDescription = built.description
        let hold: [Float] = market.discrete ? [2] : [1, 0]
        totalSteps = total
        recipe = TradingAgentRecipe(algorithm: algorithm.rawValue, seed: seed, steps: total, market: spec)
        if algorithm == .ensemble {
            // On-policy members train five times the off-policy ones' budget.
            let planned = TradingAgentRecipe.ensembleMembers(discrete: market.discrete, total: total)
            let (kinds, budgets) = (planned.map(\.algorithm), planned.map(\.budget))
            let members = try zip(kinds, budgets).map { try TradingAgents.make($0, trainEnvironment, seed: seed, total: $1) }
            var ensembleConfig = Ensemble<TradingEnvironment>.Config()
            ensembleConfig.seed = seed
            let ensemble = try Ensemble<TradingEnvironment>(
                members: members, actionSpace: trainEnvironment.actionSpace, config: ensembleConfig)
            agent = ensemble
            train = nil
            let cash: [Float] = market.discrete ? [1] : [0, 0]
            trainOnRunners = Self.ensembleOnCluster(
                ensemble, kinds: kinds, budgets: budgets, spec: spec, validation: validation, cash: cash, seed: seed,
                encoder: encoder?.artifact, runners: runners)
            report = { folder in
                var rows: [(String, (returns: [Double], activity: TradingActivity))] = []
                for (index, member) in members.enumerated() {
                    rows.append(
                        (
                            ensemble.memberNames[index] + (ensemble.included[index] ? "" : " (out)"),
                            OutOfSample.run(of: member, on: test)
                        ))
                }
                let steps = ensemble.run(test, seed: seed).map(\.info)
                rows.append(("ensemble", (steps.map { $0["return"] ?? 0 }, TradingActivity(steps: steps))))
                rows.append(("buy and hold", OutOfSample.run(on: test, seed: 0) { _ in hold }))
                rows.append(("cash", OutOfSample.run(on: test, seed: 0) { _ in cash }))
                try Self.writeReport(rows, weights: (ensemble.memberNames, ensemble.history.map(\.weights)), to: folder)
            }
            return
        }

        let agent: any Agent
        if let runners {
            let interval = max(1000, total / 20)
            if algorithm == .ppo {
                var config: PPO<TradingEnvironment>.Config = TradingAgents.ppoConfig(seed: seed, total: total)
                try RLSetup.spread(&config, over: runners)
                let ppo = try PPO(config: config) { _ in trainEnvironment }
                agent = ppo
                trainOnRunners = RLSetup.onRunners(
                    ppo, .trading(spec), validation, interval: interval, seed: seed, encoder: encoder?.artifact)
            } else {
                agent = try Self.marketAgent(algorithm, trainEnvironment, seed: seed, total: total)
                guard let learner = agent as? any OffPolicyLearner else {
                    throw ValidationError("--env-runners: \(algorithm.rawValue) does not learn from rollout workers yet")
                }
                trainOnRunners = RLSetup.offPolicyOnRunners(
                    learner, .trading(spec), validation, total: total, interval: interval, seed: seed,
                    environmentsPerRunner: runners.environmentsPerRunner, encoder: encoder?.artifact)
            }
        } else {
            agent = try Self.marketAgent(algorithm, trainEnvironment, seed: seed, total: total)
        }
        self.agent = agent
        train = Self.run(agent, name, validation, total, seed: seed)
        report = { folder in
            try Self.writeReport(
                [
                    (agent.name, OutOfSample.run(of: agent, on: test)),
                    ("buy and hold", OutOfSample.run(on: test) { _ in hold }),
                ],
                weights: nil, to: folder)
        }
    }

    static func run<Base: Environment>(
        _ agent: any Agent, _ name: String, _ evaluation: Base, _ total: Int, seed: UInt64
    ) -> (
        Int?, Int, Double?, (String) -> Void
    ) -> LearningCurve {
        { interval, _, stopAt, progress in
            TrainingRun(
                totalSteps: total, evaluationInterval: interval ?? max(1000, total / 20), evaluationEpisodes: 1, stopAt: stopAt,
                environmentName: name, seed: seed, evaluationEnvironment: evaluation
            ).run(agent, progress: progress)
        }
    }

    /// An agent of `algorithm` for a market environment, with the platform's settings there.
    static func marketAgent<Base: Environment>(
        _ algorithm: RLCommand.Algorithm, _ environment: Base, seed: UInt64, total: Int
    ) throws -> any Agent {
        guard let kind = TradingAlgorithm(rawValue: algorithm.rawValue) else {
            throw ValidationError("\(algorithm.rawValue) is not one agent")
        }
        do {
            return try TradingAgents.make(kind, environment, seed: seed, total: total)
        } catch let error as AgentError {
            throw ValidationError(error.description)
        }
    }

    /// Prints and writes (oos.json, and for the ensemble weights.csv) the test-span metrics of
    /// each strategy, and plots their equity curves (equity.png).
    static func writeReport(
        _ rows: [(String, (returns: [Double], activity: TradingActivity))], weights: ([String], [[Double]])?, to folder: String
    ) throws {
        print("\nOut of sample (the last 15% of bars, costs included; Sharpe annualised for 1-minute bars):")
        print(
            "strategy".padding(toLength: 16, withPad: " ", startingAt: 0)
                + "   return   Sharpe   max drawdown   trades   turnover/bar    costs")
        var json: [String: [String: Double]] = [:]
        var plot = LinePlot(title: "out-of-sample equity", xLabel: "bars", yLabel: "equity")
        for (name, (returns, activity)) in rows {
            let metrics = TradingMetrics(returns: returns, periodsPerYear: barsPerYear)
            print(
                name.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(
                        format: " %+7.2f%%  %7.2f   %6.2f%%        %6d   %12.4f   %5.2f%%", metrics.totalReturn * 100,
                        metrics.sharpe,
                        metrics.maxDrawdown * 100, activity.trades, activity.turnoverPerBar, activity.costs * 100))
            json[name] = [
                "return": metrics.totalReturn, "sharpe": metrics.sharpe, "max_drawdown": metrics.maxDrawdown,
                "bars": Double(metrics.bars), "trades": Double(activity.trades), "turnover_per_bar": activity.turnoverPerBar,
                "costs": activity.costs,
            ]
            var equity = 1.0
            var points: [(x: Double, y: Double)] = [(0, 1)]
            for (bar, value) in returns.enumerated() {
                equity *= 1 + value
                if bar % 10 == 0 || bar == returns.count - 1 { points.append((Double(bar + 1), equity)) }
            }
            plot.series.append(.init(name: name, points: points))
        }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted])
        try data.write(to: URL(fileURLWithPath: "\(folder)/oos.json"))
        try plot.write(to: "\(folder)/equity.png")
        if let (names, history) = weights {
            var text = "step," + names.joined(separator: ",") + "\n"
            for (step, row) in history.enumerated() {
                text += "\(step)," + row.map { String(format: "%.6f", $0) }.joined(separator: ",") + "\n"
            }
            try text.write(toFile: "\(folder)/weights.csv", atomically: true, encoding: .utf8)
            print(
                "Wrote \(folder)/oos.json, \(folder)/equity.png and \(folder)/weights.csv (the ensemble's weights, every step).")
        } else {
            print("Wrote \(folder)/oos.json and \(folder)/equity.png.")
        }
    }
}
