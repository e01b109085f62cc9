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
    private var policy: MLP
    private var valueNetwork: MLP
    private var logStd: Tensor
    private let actionSpace: Space
    private var optimiser: Adam
    private var generator: SeededGenerator

    /// - Parameter make: builds environment copy `i` (seeded `config.seed + i` on reset).
    /// - Throws: `AgentError` for a bad configuration or an observation space that is not a box.
    public init(config: Config = Config(), environment make: (Int) -> Base) throws {
        try config.validate()
        self.config = config
        let environments = VectorEnvironment(count: config.environments, make: make)
        guard case .box = environments.observationSpace else { throw AgentError("PPO needs box observations") }
        actionSpace = environments.actionSpace
        let inputs = environments.observationDimension
        let outputs = actionSpace.actions ?? actionSpace.dimension
        let gains = [Float](repeating: Float(2).squareRoot(), count: config.hidden.count)
        policy = MLP(
            sizes: [inputs] + config.hidden + [outputs], activation: config.activation,
            initialisation: .orthogonal(gains: gains + [0.01]), seed: config.seed &+ 1)
        valueNetwork = MLP(
            sizes: [inputs] + config.hidden + [1], activation: config.activation, initialisation: .orthogonal(gains: gains + [1]),
            seed: config.seed &+ 2)
        logStd = Tensor(shape: [actionSpace.actions == nil ? outputs : 0])
        optimiser = Adam(learningRate: config.learningRate)
        optimiser.epsilon = 1e-5
        generator = SeededGenerator(seed: config.seed &+ 3)
        collector = RolloutCollector(environments: environments, gamma: config.gamma)
        collector.reset(seed: config.seed)
    }

    private var continuous: Bool { actionSpace.actions == nil }

    /// All trained parameters, in the optimiser's order.
    private var parameters: [Tensor] {
        get { policy.tensors + valueNetwork.tensors + (continuous ? [logStd] : []) }
        set {
            let (p, v) = (policy.tensors.count, valueNetwork.tensors.count)
            policy.tensors = Array(newValue[0..<p])
            valueNetwork.tensors = Array(newValue[p..<(p + v)])
            if continuous { logStd = newValue[p + v] }
        }
    }

    public func act(_ observations: [Float], deterministic: Bool) -> [Float] {
        let batch = observations.count / collector.observationDimension
        let output = policy.predict(Tensor(shape: [batch, collector.observationDimension], scalars: observations))
        if let actions = actionSpace.actions {
            if deterministic { return output.argmaxLast().map(Float.init) }
            return Categorical.sample(output.reshaped([batch, actions]), using: &generator).map(Float.init)
        }
        let raw = deterministic ? output.scalars : DiagonalGaussian.sample(mean: output, logStd: logStd, using: &generator)
        return clipped(raw)
    }

    private func clipped(_ actions: [Float]) -> [Float] {
        guard case .box(let low, let high) = actionSpace else { return actions }
        let width = low.count
        return actions.indices.map { Swift.min(Swift.max(actions[$0], low[$0 % width]), high[$0 % width]) }
    }

    /// One sampled step of the policy for the collector.
    private func decide(_ observations: Tensor) -> PolicyStep {
        let batch = observations.shape[0]
        let output = policy.predict(observations)
        let values = valueNetwork.predict(observations).scalars
        if let actions = actionSpace.actions {
            let logits = output.reshaped([batch, actions])
            let chosen = Categorical.sample(logits, using: &generator)
            let logProbabilities = logits.logSoftmax()
            return PolicyStep(
                actions: chosen.map(Float.init),
                logProbabilities: chosen.enumerated().map { logProbabilities.scalars[$0 * actions + $1] },
                values: values)
        }
        let raw = DiagonalGaussian.sample(mean: output, logStd: logStd, using: &generator)
        let tape = Tape(recording: false)
        let logProbabilities = DiagonalGaussian.logProbability(
            of: Tensor(shape: output.shape, scalars: raw), mean: tape.constant(output), logStd: tape.constant(logStd))
        return PolicyStep(
            actions: raw, environmentActions: clipped(raw), logProbabilities: logProbabilities.value.scalars, values: values)
    }

    public func train(steps: Int) {
        let target = stepsDone + steps
        while stepsDone < target {
            let progress = config.linearSchedule ? Swift.max(0, 1 - Float(stepsDone) / Float(config.totalSteps)) : 1
            let rollout = collector.collect(
                steps: config.steps, policy: { self.decide($0) }, value: { self.valueNetwork.predict($0).scalars })
            stepsDone += config.steps * config.environments
            episodeReturns += rollout.finishedEpisodes.map(\.episodeReturn)
            optimiser.learningRate = config.learningRate * progress
            update(rollout, clipRange: config.clipRange * Swift.max(progress, 1e-8))
        }
    }

    /// The epochs of minibatch updates on one rollout.
    private func update(_ rollout: Rollout, clipRange: Float) {
        let (advantages, returns) = rollout.advantages(gamma: config.gamma, lambda: config.gaeLambda)
        let total = rollout.steps * rollout.environments
        let (width, actionWidth) = (collector.observationDimension, collector.actionDimension)
        var order = Array(0..<total)
        var params = parameters
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
            }
        }
        parameters = params
    }

    public func checkpoint() -> [String: Tensor] {
        var named = ParameterNames.named([("policy", policy.tensors), ("value", valueNetwork.tensors)])
        if continuous { named["log_std"] = logStd }
        return named
    }

    public func restore(_ saved: [String: Tensor]) throws {
        policy.tensors = try ParameterNames.take("policy", like: policy.tensors, from: saved)
        valueNetwork.tensors = try ParameterNames.take("value", like: valueNetwork.tensors, from: saved)
        if continuous {
            guard let spread = saved["log_std"], spread.shape == logStd.shape else {
                throw AgentError("the checkpoint lacks log_std")
            }
            logStd = spread
        }
    }
}
