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
    let train: (Int?, Int, Double?, (String) -> Void) -> LearningCurve
    /// Writes the out-of-sample comparison into a folder (trading environments only).
    var outOfSample: ((String) throws -> Void)?
    /// Trains with rollout workers on the cluster (set when runners were asked for).
    var trainOnRunners: RunnerTraining?

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

    init(
        algorithm: RLCommand.Algorithm, environment: RLCommand.EnvironmentName, seed: UInt64, steps: Int?, configData: Data?,
        preset: String?, market: MarketOptions, runners: Runners? = nil
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
        // With rollout workers, PPO's environments are the workers' together.
        func spread<Base: Environment>(_ config: inout PPO<Base>.Config) throws {
            guard let runners else { return }
            guard runners.count >= 1 else { throw ValidationError("--env-runners must be at least 1") }
            if let perRunner = runners.environmentsPerRunner {
                guard perRunner >= 1 else { throw ValidationError("--envs-per-runner must be at least 1") }
                config.environments = runners.count * perRunner
            } else if config.environments % runners.count != 0 {
                throw ValidationError(
                    "\(config.environments) environments do not split evenly into \(runners.count) runners: give --envs-per-runner"
                )
            }
        }
        func onRunners<Base: Environment>(
            _ agent: PPO<Base>, _ name: RolloutEnvironment, _ evaluation: Base, interval: Int
        ) -> RunnerTraining {
            { cluster, options, requestedInterval, episodes, stopAt, progress, events in
                var options = options
                options.environmentsPerRunner = agent.config.environments / options.runners
                progress(
                    "Policy: \(agent.policy.parameterCount) parameters, published once per update through the object store; "
                        + "each update learns from \(agent.config.steps) steps of \(options.runners) × \(options.environmentsPerRunner) environments."
                )
                let group = try await EnvRunnerGroup(
                    cluster: cluster, environment: name, seed: seed, gamma: agent.config.gamma,
                    policy: .ppo(hidden: agent.config.hidden, activation: agent.config.activation), options: options,
                    observer: events)
                let run = TrainingRun(
                    totalSteps: agent.config.totalSteps, evaluationInterval: requestedInterval ?? interval,
                    evaluationEpisodes: episodes, stopAt: stopAt, environmentName: name.displayName, seed: seed,
                    evaluationEnvironment: evaluation)
                var (sampled, sampling, learning) = (0, Duration.zero, Duration.zero)
                do {
                    let curve = try await run.run(
                        agent, progress: progress,
                        details: {
                            String(
                                format: "  sampling %.0f steps/s  learner %.0f updates/s",
                                Double(sampled) / max(sampling.seconds, 1e-9),
                                Double(agent.updatesDone) / max(learning.seconds, 1e-9))
                        }
                    ) { steps in
                        let target = agent.stepsDone + steps
                        while agent.stepsDone < target {
                            let started = ContinuousClock.now
                            let rollout = try await group.sample(weights: agent.policy.flattened(), steps: agent.config.steps)
                            let sampledAt = ContinuousClock.now
                            agent.learn(from: rollout)
                            sampled += rollout.steps * rollout.environments
                            sampling += sampledAt - started
                            learning += ContinuousClock.now - sampledAt
                        }
                    }
                    await group.shutdown()
                    return curve
                } catch {
                    await group.shutdown()
                    throw error
                }
            }
        }
        // Off-policy learners on rollout workers: the workers' transitions feed the learner's
        // replay buffer; the next batch samples (with the weights of then) while the learner
        // updates on the last. Each call brings about 256 transitions.
        func offPolicyOnRunners<Base: Environment>(
            _ agent: any OffPolicyLearner, kind: ContinuousActor.Kind, hidden: [Int], _ name: RolloutEnvironment,
            _ evaluation: Base,
            total: Int, interval: Int
        ) -> RunnerTraining {
            { cluster, options, requestedInterval, episodes, stopAt, progress, events in
                var options = options
                options.environmentsPerRunner = runners?.environmentsPerRunner ?? 1
                let perCall = options.runners * options.environmentsPerRunner
                let steps = max(1, 256 / perCall)
                progress(
                    "Actor: \(agent.actingPolicy.flattened().count) parameters, published once per batch through the object store; "
                        + "batches of \(steps) steps of \(options.runners) × \(options.environmentsPerRunner) environments, sampled while the learner updates."
                )
                let group = try await EnvRunnerGroup(
                    cluster: cluster, environment: name, seed: seed, gamma: 0.99, policy: .actor(kind, hidden: hidden),
                    options: options,
                    observer: events)
                let run = TrainingRun(
                    totalSteps: total, evaluationInterval: requestedInterval ?? interval, evaluationEpisodes: episodes,
                    stopAt: stopAt,
                    environmentName: name.displayName, seed: seed, evaluationEnvironment: evaluation)
                var (sampling, learning, sampled) = (Duration.zero, Duration.zero, 0)
                var inFlight: (task: Task<Transitions, any Error>, count: Int)?
                func launch() {
                    let weights = agent.actingPolicy.flattened()
                    let random = agent.stepsDone + (inFlight?.count ?? 0) < agent.randomSteps
                    inFlight = (Task { try await group.collect(weights: weights, steps: steps, random: random) }, steps * perCall)
                }
                do {
                    let curve = try await run.run(
                        agent, progress: progress,
                        details: {
                            String(
                                format: "  sampling %.0f steps/s  learner %.0f steps/s",
                                Double(sampled) / max(sampling.seconds, 1e-9),
                                Double(sampled) / max(learning.seconds, 1e-9))
                        }
                    ) { stretch in
                        let target = min(total, agent.stepsDone + stretch)
                        while agent.stepsDone < target {
                            if inFlight == nil { launch() }
                            guard let pending = inFlight else { break }
                            let transitions = try await pending.task.value
                            inFlight = nil
                            let batch = transitions.prefix(total - agent.stepsDone)
                            // The next batch samples with the current weights while these are learnt from.
                            if agent.stepsDone + batch.count < total { launch() }
                            let started = ContinuousClock.now
                            agent.learn(from: batch)
                            learning += ContinuousClock.now - started
                            sampled += batch.count
                            sampling = await group.samplingTime
                        }
                    }
                    inFlight?.task.cancel()
                    await group.shutdown()
                    return curve
                } catch {
                    inFlight?.task.cancel()
                    await group.shutdown()
                    throw error
                }
            }
        }
        outOfSample = nil
        trainOnRunners = nil
        let onWorkers: Set<String> = ["ppo/cartpole", "ppo/pendulum", "sac/pendulum", "td3/pendulum"]
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
            try spread(&config)
            let agent = try PPO(config: config) { _ in CartPole() }
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, 475)
            train = run(agent, "CartPole-v1", CartPole(), config.totalSteps, interval: 2048)
            if runners != nil { trainOnRunners = onRunners(agent, .cartpole, CartPole(), interval: 2048) }
        case (.ppo, .pendulum):
            var config = try decode(PPO<Pendulum>.Config.self, default: PPO<Pendulum>.Config.stableBaselinesDefaults)
            config.seed = seed
            config.totalSteps = steps ?? 100_000
            try spread(&config)
            let agent = try PPO(config: config) { _ in Pendulum() }
            (self.agent, totalSteps, threshold) = (agent, config.totalSteps, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), config.totalSteps, interval: 4096)
            if runners != nil { trainOnRunners = onRunners(agent, .pendulum, Pendulum(), interval: 4096) }
        case (.rainbow, .cartpole):
            let start = preset == "dqn" ? Rainbow<CartPole>.Config.stableBaselinesDQN : Rainbow<CartPole>.Config()
            var config = try decode(Rainbow<CartPole>.Config.self, default: start)
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
            if runners != nil {
                trainOnRunners = offPolicyOnRunners(
                    agent, kind: .squashedGaussian, hidden: config.hidden, .pendulum, Pendulum(), total: total, interval: 1000)
            }
        case (.td3, .pendulum):
            var start = TD3<Pendulum>.Config()
            start.gamma = 0.98
            start.learningStarts = 1000
            var config = try decode(TD3<Pendulum>.Config.self, default: start)
            config.seed = seed
            let total = steps ?? 20_000
            let agent = try TD3(config: config, environment: Pendulum())
            (self.agent, totalSteps, threshold) = (agent, total, -200)
            train = run(agent, "Pendulum-v1", Pendulum(), total, interval: 1000)
            if runners != nil {
                trainOnRunners = offPolicyOnRunners(
                    agent, kind: .deterministic(noise: config.explorationNoise), hidden: config.hidden, .pendulum, Pendulum(),
                    total: total, interval: 1000)
            }
        case (_, .trading), (_, .portfolio):
            guard configData == nil, preset == nil else {
                throw ValidationError("--config and --preset apply to the classic-control environments")
            }
            let trading = try TradingSetup(
                algorithm: algorithm, environment: environment, seed: seed, steps: steps, market: market)
            (agent, totalSteps, threshold) = (trading.agent, trading.totalSteps, nil)
            train = trading.train
            outOfSample = trading.report
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
    let train: (Int?, Int, Double?, (String) -> Void) -> LearningCurve
    let report: (String) throws -> Void

    /// One bar a minute, 390 a trading day, 252 days a year.
    static let barsPerYear = 252.0 * 390

    init(
        algorithm: RLCommand.Algorithm, environment: RLCommand.EnvironmentName, seed: UInt64, steps: Int?, market: MarketOptions
    ) throws {
        guard let reward = TradingReward(rawValue: market.reward) else {
            throw ValidationError(
                "unknown reward \(market.reward): \(TradingReward.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard market.bars >= 2_000 else {
            throw ValidationError("--bars must be at least 2000 for a train/validation/test split")
        }
        var marketConfig = SyntheticMarket.Config()
        marketConfig.seed = market.marketSeed
        marketConfig.symbols = environment == .portfolio ? ["AAA", "BBB", "CCC", "DDD"] : ["AAA"]
        let series = try SyntheticMarket(config: marketConfig).generate(bars: market.bars).series
        let trainEnd = market.bars * 70 / 100
        let validationEnd = market.bars * 85 / 100
        let features = try series.map { try MarketFeatures.basic($0, trainingBars: trainEnd) }
        let first = features.map(\.firstComplete).max() ?? 0
        let (trainSpan, validationSpan, testSpan) = (first..<trainEnd, trainEnd..<validationEnd, validationEnd..<market.bars)
        let total = steps ?? (algorithm == .ppo || algorithm == .rainbow ? 100_000 : 20_000)
        let name = environment == .portfolio ? "portfolio" : "trading"

        if environment == .portfolio {
            var config = PortfolioEnvironment.Config()
            config.reward = reward
            let trainEnvironment = try PortfolioEnvironment(assets: features, span: trainSpan, config: config, seed: seed)
            var whole = config
            whole.episodeLength = nil
            let validation = try PortfolioEnvironment(assets: features, span: validationSpan, config: whole, seed: seed)
            let test = try PortfolioEnvironment(assets: features, span: testSpan, config: whole, seed: seed)
            let agent = try Self.continuousAgent(algorithm, trainEnvironment, seed: seed, total: total)
            self.agent = agent
            totalSteps = total
            train = Self.run(agent, name, validation, total, seed: seed)
            let equal = [Float](repeating: 1, count: features.count) + [0]
            report = { folder in
                try Self.writeReport(
                    [
                        (agent.name, OutOfSample.returns(of: agent, on: test)),
                        ("equal weights", OutOfSample.returns(holding: equal, on: test)),
                    ],
                    weights: nil, to: folder)
            }
            return
        }

        var config = TradingEnvironment.Config()
        config.reward = reward
        config.actionMode = market.discrete ? .discrete : .continuous
        let asset = features[0]
        let trainEnvironment = try TradingEnvironment(market: asset, span: trainSpan, config: config, seed: seed)
        var whole = config
        whole.episodeLength = nil
        let validation = try TradingEnvironment(market: asset, span: validationSpan, config: whole, seed: seed)
        let test = try TradingEnvironment(market: asset, span: testSpan, config: whole, seed: seed)
        let hold: [Float] = market.discrete ? [2] : [1, 0]
        totalSteps = total

        if algorithm == .ensemble {
            let kinds: [RLCommand.Algorithm] = market.discrete ? [.ppo, .rainbow] : [.ppo, .sac, .td3]
            let members = try kinds.map { kind -> any Agent in
                let budget = kind == .ppo || kind == .rainbow ? total * 5 : total
                return market.discrete
                    ? try Self.discreteAgent(kind, trainEnvironment, seed: seed, total: budget)
                    : try Self.continuousAgent(kind, trainEnvironment, seed: seed, total: budget)
            }
            var ensembleConfig = Ensemble<TradingEnvironment>.Config()
            ensembleConfig.seed = seed
            let ensemble = try Ensemble<TradingEnvironment>(
                members: members, actionSpace: trainEnvironment.actionSpace, config: ensembleConfig)
            agent = ensemble
            // Each member trains its own budget (on-policy members five times the off-policy ones').
            train = { _, _, _, progress in
                var curve = LearningCurve(algorithm: "ensemble", environment: name, seed: seed)
                for (member, kind) in zip(members, kinds) {
                    let budget = kind == .ppo || kind == .rainbow ? total * 5 : total
                    let memberCurve = TrainingRun(
                        totalSteps: budget, evaluationInterval: max(1000, budget / 10), evaluationEpisodes: 1,
                        environmentName: name, seed: seed, evaluationEnvironment: validation
                    ).run(member, progress: progress)
                    curve.points += memberCurve.points
                }
                return curve
            }
            report = { folder in
                var rows = members.map { ($0.name, OutOfSample.returns(of: $0, on: test)) }
                let ensembleReturns = ensemble.run(test, seed: seed).map { $0.info["return"] ?? 0 }
                rows.append(("ensemble", ensembleReturns))
                rows.append(("buy and hold", OutOfSample.returns(holding: hold, on: test)))
                try Self.writeReport(rows, weights: (ensemble.memberNames, ensemble.history.map(\.weights)), to: folder)
            }
            return
        }

        let agent =
            market.discrete
            ? try Self.discreteAgent(algorithm, trainEnvironment, seed: seed, total: total)
            : try Self.continuousAgent(algorithm, trainEnvironment, seed: seed, total: total)
        self.agent = agent
        train = Self.run(agent, name, validation, total, seed: seed)
        report = { folder in
            try Self.writeReport(
                [
                    (agent.name, OutOfSample.returns(of: agent, on: test)),
                    ("buy and hold", OutOfSample.returns(holding: hold, on: test)),
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

    static func continuousAgent<Base: Environment>(
        _ algorithm: RLCommand.Algorithm, _ environment: Base, seed: UInt64, total: Int
    ) throws
        -> any Agent
    {
        switch algorithm {
        case .ppo:
            var config = PPO<Base>.Config()
            config.seed = seed
            config.totalSteps = total
            config.gamma = 0.99
            config.gaeLambda = 0.95
            config.learningRate = 3e-4
            config.epochs = 10
            return try PPO(config: config) { _ in environment }
        case .sac:
            var config = SAC<Base>.Config()
            config.seed = seed
            config.learningStarts = 1000
            return try SAC(config: config, environment: environment)
        case .td3:
            var config = TD3<Base>.Config()
            config.seed = seed
            config.learningStarts = 1000
            config.hidden = [256, 256]
            return try TD3(config: config, environment: environment)
        default:
            throw ValidationError("\(algorithm.rawValue) needs discrete actions: add --discrete")
        }
    }

    static func discreteAgent<Base: Environment>(
        _ algorithm: RLCommand.Algorithm, _ environment: Base, seed: UInt64, total: Int
    ) throws
        -> any Agent
    {
        switch algorithm {
        case .ppo:
            var config = PPO<Base>.Config()
            config.seed = seed
            config.totalSteps = total
            config.gamma = 0.99
            config.gaeLambda = 0.95
            config.learningRate = 3e-4
            config.epochs = 10
            return try PPO(config: config) { _ in environment }
        case .rainbow:
            var config = Rainbow<Base>.Config()
            config.seed = seed
            config.totalSteps = total
            config.valueMin = -20
            config.valueMax = 20
            return try Rainbow(config: config, environment: environment)
        default:
            throw ValidationError("\(algorithm.rawValue) takes box actions: leave out --discrete")
        }
    }

    /// Prints and writes (oos.json, and for the ensemble weights.csv) the test-span metrics of
    /// each strategy, and plots their equity curves (equity.png).
    static func writeReport(_ rows: [(String, [Double])], weights: ([String], [[Double]])?, to folder: String) throws {
        print("\nOut of sample (the last 15% of bars, costs included; Sharpe annualised for 1-minute bars):")
        print("strategy".padding(toLength: 16, withPad: " ", startingAt: 0) + "   return   Sharpe   max drawdown")
        var json: [String: [String: Double]] = [:]
        var plot = LinePlot(title: "out-of-sample equity", xLabel: "bars", yLabel: "equity")
        for (name, returns) in rows {
            let metrics = TradingMetrics(returns: returns, periodsPerYear: barsPerYear)
            print(
                name.padding(toLength: 16, withPad: " ", startingAt: 0)
                    + String(
                        format: " %+7.2f%%  %7.2f   %6.2f%%", metrics.totalReturn * 100, metrics.sharpe, metrics.maxDrawdown * 100
                    ))
            json[name] = [
                "return": metrics.totalReturn, "sharpe": metrics.sharpe, "max_drawdown": metrics.maxDrawdown,
                "bars": Double(metrics.bars),
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
