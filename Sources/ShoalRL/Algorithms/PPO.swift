import Foundation
import ShoalMarket
import ShoalTensor

/// Proximal Policy Optimisation (Schulman et al. 2017) as Stable-Baselines3 runs it: rollouts
/// of several environments, generalised advantage estimation, several epochs of minibatches
/// on the clipped surrogate objective, an optionally clipped value loss, an entropy bonus and
/// gradient clipping; separate policy and value networks with orthogonal initialisation;
/// discrete actions (categorical) or boxes (Gaussian with a learned, state-independent
/// log standard deviation, actions clipped into the box for the environment).
public final class PPO<Base: Environment>: Agent {
    public struct Config: Codable, Sendable, Equatable {
        public var environments = 8
        /// Steps per environment per rollout.
        public var steps = 32
        public var batchSize = 256
        public var epochs = 20
        public var gamma: Float = 0.98
        public var gaeLambda: Float = 0.8
        public var clipRange: Float = 0.2
        /// Clip the value function's change too (nil: no clipping, Stable-Baselines3's default).
        public var valueClipRange: Float?
        public var entropyCoefficient: Float = 0
        public var valueCoefficient: Float = 0.5
        public var maxGradientNorm: Float = 0.5
        public var learningRate: Float = 1e-3
        /// Learning rate and clip range fall linearly to 0 over `totalSteps` (rl-zoo's `lin_`).
        public var linearSchedule = true
        public var totalSteps = 100_000
        public var hidden = [64, 64]
        public var activation: MLP.Activation = .tanh
        public var normalizeAdvantage = true
        public var seed: UInt64 = 0

        public init() {}

        /// Stable-Baselines3's defaults (one environment, 2048 steps, batch 64, 10 epochs).
        public static var stableBaselinesDefaults: Config {
            var config = Config()
            config.environments = 1
            config.steps = 2048
            config.batchSize = 64
            config.epochs = 10
            config.gamma = 0.99
            config.gaeLambda = 0.95
            config.learningRate = 3e-4
            config.linearSchedule = false
            return config
        }

        public func validate() throws {
            guard environments > 0, steps > 0, batchSize > 0, epochs > 0, totalSteps > 0 else {
                throw AgentError("PPO needs positive environments, steps, batch size, epochs and total steps")
            }
            guard (0...1).contains(gamma), (0...1).contains(gaeLambda), clipRange > 0, learningRate > 0 else {
                throw AgentError("PPO: gamma and gaeLambda must be in [0, 1], clipRange and learningRate positive")
            }
            guard !hidden.isEmpty, hidden.allSatisfy({ $0 > 0 }) else { throw AgentError("PPO: hidden sizes must be positive") }
        }
    }

    public let name = "ppo"
    public let config: Config
    public private(set) var stepsDone = 0
    public private(set) var episodeReturns: [Double] = []
    /// The last update's losses: policy, value, entropy, approximate KL.
    public private(set) var lastLosses: (policy: Float, value: Float, entropy: Float, kl: Float) = (0, 0, 0, 0)

    private var collector: RolloutCollector<Base>
    private var networks: PPOPolicy
    private var optimiser: Adam
    private var generator: SeededGenerator

    /// - Parameter make: builds environment copy `i` (seeded `config.seed + i` on reset).
    /// - Throws: `AgentError` for a bad configuration or an observation space that is not a box.
    public init(config: Config = Config(), environment make: (Int) -> Base) throws {
        try config.validate()
        self.config = config
        let environments = VectorEnvironment(count: config.environments, make: make)
        guard case .box = environments.observationSpace else { throw AgentError("PPO needs box observations") }
        networks = try PPOPolicy(
            observationDimension: environments.observationDimension, actionSpace: environments.actionSpace,
            hidden: config.hidden, activation: config.activation, seed: config.seed)
        optimiser = Adam(learningRate: config.learningRate)
        optimiser.epsilon = 1e-5
        generator = SeededGenerator(seed: config.seed &+ 3)
        collector = RolloutCollector(environments: environments, gamma: config.gamma)
        collector.reset(seed: config.seed)
    }

    /// The networks as they stand: what rollout workers act with (`PPOPolicy.flattened()`).
    public var policy: PPOPolicy { networks }

    public func act(_ observations: [Float], deterministic: Bool) -> [Float] {
        networks.act(observations, deterministic: deterministic, using: &generator)
    }

    public func train(steps: Int) {
        let target = stepsDone + steps
        while stepsDone < target {
            let networks = self.networks
            let rollout = collector.collect(
                steps: config.steps, policy: { networks.decide($0, using: &self.generator) }, value: { networks.values($0) })
            learn(from: rollout)
        }
    }

    /// Learns from one rollout of `steps` steps of every environment, sampled elsewhere with
    /// this agent's current `policy` (rollout workers' parts joined by `Rollout.joined`): the
    /// schedule's learning rate and clip range at the steps done so far, then the epochs of
    /// minibatch updates. Counts the rollout's steps and finished episodes.
    /// - Precondition: the rollout has `config.steps` steps of `config.environments` environments.
    public func learn(from rollout: Rollout) {
        precondition(
            rollout.steps == config.steps && rollout.environments == config.environments,
            "PPO learns from rollouts of \(config.steps) steps of \(config.environments) environments, not \(rollout.steps) of \(rollout.environments)"
        )
        let progress = config.linearSchedule ? Swift.max(0, 1 - Float(stepsDone) / Float(config.totalSteps)) : 1
        stepsDone += rollout.steps * rollout.environments
        episodeReturns += rollout.finishedEpisodes.map(\.episodeReturn)
        optimiser.learningRate = config.learningRate * progress
        update(rollout, clipRange: config.clipRange * Swift.max(progress, 1e-8))
    }

    /// Gradient updates (minibatches) done so far.
    public private(set) var updatesDone = 0

    /// The epochs of minibatch updates on one rollout.
    private func update(_ rollout: Rollout, clipRange: Float) {
        let (advantages, returns) = rollout.advantages(gamma: config.gamma, lambda: config.gaeLambda)
        let total = rollout.steps * rollout.environments
        let (width, actionWidth) = (collector.observationDimension, collector.actionDimension)
        var order = Array(0..<total)
        var params = networks.tensors
        let (policy, valueNetwork) = (networks.policy, networks.value)
        let actionSpace = networks.actionSpace
        for _ in 0..<config.epochs {
            for index in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(index, Int(generator.next() % UInt64(index + 1)))
            }
            for start in stride(from: 0, to: total, by: config.batchSize) {
                let rows = Array(order[start..<Swift.min(start + config.batchSize, total)])
                let batch = rows.count
                var observations = [Float]()
                observations.reserveCapacity(batch * width)
                var actions = [Float]()
                actions.reserveCapacity(batch * actionWidth)
                for row in rows {
                    observations += rollout.observations[row * width..<(row + 1) * width]
                    actions += rollout.actions[row * actionWidth..<(row + 1) * actionWidth]
                }
                var batchAdvantages = rows.map { advantages[$0] }
                if config.normalizeAdvantage && batch > 1 {
                    let mean = batchAdvantages.reduce(0, +) / Float(batch)
                    let deviation = (batchAdvantages.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(batch - 1)).squareRoot()
                    batchAdvantages = batchAdvantages.map { ($0 - mean) / (deviation + 1e-8) }
                }
                let oldLogProbabilities = Tensor(shape: [batch], scalars: rows.map { rollout.logProbabilities[$0] })
                let oldValues = Tensor(shape: [batch], scalars: rows.map { rollout.values[$0] })
                let targets = Tensor(shape: [batch], scalars: rows.map { returns[$0] })

                let tape = Tape()
                let variables = params.map { tape.variable($0) }
                let p = policy.tensors.count
                let v = valueNetwork.tensors.count
                let input = tape.constant(Tensor(shape: [batch, width], scalars: observations))
                let output = policy(input, Array(variables[0..<p]))
                let logProbabilities: Variable
                let entropy: Variable
                if let count = actionSpace.actions {
                    let all = output.logSoftmax()
                    logProbabilities = all.gather(actions.map { Int($0) })
                    entropy = Categorical.entropy(all).mean()
                    _ = count
                } else {
                    let spread = variables[p + v]
                    logProbabilities = DiagonalGaussian.logProbability(
                        of: Tensor(shape: [batch, actionWidth], scalars: actions), mean: output, logStd: spread)
                    entropy = DiagonalGaussian.entropy(logStd: spread)
                }
                let ratio = (logProbabilities - tape.constant(oldLogProbabilities)).exp()
                let advantage = tape.constant(Tensor(shape: [batch], scalars: batchAdvantages))
                let surrogate = Variable.minimum(
                    ratio * advantage, ratio.clamped(to: (1 - clipRange)...(1 + clipRange)) * advantage)
                let policyLoss = -surrogate.mean()
                var values = valueNetwork(input, Array(variables[p..<(p + v)])).reshaped([batch])
                if let valueClip = config.valueClipRange {
                    let old = tape.constant(oldValues)
                    values = old + (values - old).clamped(to: -valueClip...valueClip)
                }
                let valueLoss = values.meanSquaredError(targets)
                let loss = policyLoss + valueLoss * config.valueCoefficient - entropy * config.entropyCoefficient
                tape.backward(from: loss)
                var gradients = variables.map { $0.gradient ?? Tensor(shape: $0.shape) }
                clipGradients(&gradients, maxNorm: config.maxGradientNorm)
                optimiser.update(&params, gradients: gradients)
                let logRatio = zip(logProbabilities.value.scalars, oldLogProbabilities.scalars).map { $0 - $1 }
                let kl = logRatio.reduce(Float(0)) { $0 + (Foundation.exp($1) - 1) - $1 } / Float(batch)
                lastLosses = (policyLoss.value.scalars[0], valueLoss.value.scalars[0], entropy.value.scalars[0], kl)
                updatesDone += 1
            }
        }
        networks.tensors = params
    }

    public func checkpoint() -> [String: Tensor] {
        var named = ParameterNames.named([("policy", networks.policy.tensors), ("value", networks.value.tensors)])
        if networks.continuous { named["log_std"] = networks.logStd }
        return named
    }

    public func restore(_ saved: [String: Tensor]) throws {
        networks.policy.tensors = try ParameterNames.take("policy", like: networks.policy.tensors, from: saved)
        networks.value.tensors = try ParameterNames.take("value", like: networks.value.tensors, from: saved)
        if networks.continuous {
            guard let spread = saved["log_std"], spread.shape == networks.logStd.shape else {
                throw AgentError("the checkpoint lacks log_std")
            }
            networks.logStd = spread
        }
    }
}
