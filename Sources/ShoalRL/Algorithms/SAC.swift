import Foundation
import ShoalMarket
import ShoalTensor

/// Soft Actor-Critic (Haarnoja et al. 2018) as Stable-Baselines3 runs it: a tanh-squashed
/// Gaussian actor, twin critics with Polyak-averaged targets, the smaller of the two in every
/// target and in the actor's objective, and the entropy coefficient tuned automatically toward
/// a target entropy of −(action dimension). Box actions only, learned in [−1, 1].
public final class SAC<Base: Environment>: OffPolicyLearner {
    public struct Config: Codable, Sendable, Equatable {
        public var learningRate: Float = 3e-4
        public var bufferSize = 1_000_000
        /// Uniformly random actions before learning starts.
        public var learningStarts = 100
        public var batchSize = 256
        public var tau: Float = 0.005
        public var gamma: Float = 0.99
        public var trainFrequency = 1
        public var gradientSteps = 1
        public var hidden = [256, 256]
        /// The entropy coefficient's starting value; tuned from there unless `tuneEntropy` is false.
        public var entropyCoefficient: Float = 1
        public var tuneEntropy = true
        /// nil: −(action dimension).
        public var targetEntropy: Float?
        public var seed: UInt64 = 0

        public init() {}

        public func validate() throws {
            guard learningRate > 0, bufferSize > 0, learningStarts >= 0, batchSize > 0, trainFrequency > 0, gradientSteps > 0
            else {
                throw AgentError("SAC needs a positive learning rate, buffer, batch, train frequency and gradient steps")
            }
            guard (0...1).contains(tau), (0...1).contains(gamma), entropyCoefficient > 0 else {
                throw AgentError("SAC: tau and gamma must be in [0, 1], the entropy coefficient positive")
            }
            guard !hidden.isEmpty, hidden.allSatisfy({ $0 > 0 }) else { throw AgentError("SAC: hidden sizes must be positive") }
        }
    }

    public let name = "sac"
    public let config: Config
    public private(set) var stepsDone = 0
    public var episodeReturns: [Double] { interaction.returns + sampledElsewhere }
    /// Returns of episodes sampled by rollout workers.
    private var sampledElsewhere: [Double] = []
    /// The last update's losses and entropy coefficient.
    public private(set) var lastLosses: (actor: Float, critic: Float, alpha: Float) = (0, 0, 0)

    private var interaction: OffPolicyInteraction<Base>
    private var buffer: ReplayBuffer
    private var actor: MLP
    private var critics: [MLP]
    private var targetCritics: [[Tensor]]
    private var logAlpha: Tensor
    private var actorOptimiser: Adam
    private var criticOptimiser: Adam
    private var alphaOptimiser: Adam
    private var generator: SeededGenerator
    private let targetEntropy: Float

    static var logStdRange: ClosedRange<Float> { -20...2 }

    /// - Throws: `AgentError` for a bad configuration or an environment without box spaces.
    public init(config: Config = Config(), environment: Base) throws {
        try config.validate()
        self.config = config
        interaction = try OffPolicyInteraction(environment: environment, seed: config.seed)
        let (inputs, actions) = (interaction.observationDimension, interaction.actionDimension)
        buffer = ReplayBuffer(capacity: config.bufferSize, observationDimension: inputs, actionDimension: actions)
        actor = MLP(sizes: [inputs] + config.hidden + [2 * actions], activation: .relu, seed: config.seed &+ 11)
        critics = (0..<2).map {
            MLP(sizes: [inputs + actions] + config.hidden + [1], activation: .relu, seed: config.seed &+ 21 &+ UInt64($0))
        }
        targetCritics = critics.map(\.tensors)
        logAlpha = Tensor(shape: [1], scalars: [Foundation.log(config.entropyCoefficient)])
        actorOptimiser = Adam(learningRate: config.learningRate)
        criticOptimiser = Adam(learningRate: config.learningRate)
        alphaOptimiser = Adam(learningRate: config.learningRate)
        generator = SeededGenerator(seed: config.seed &+ 31)
        targetEntropy = config.targetEntropy ?? -Float(actions)
    }

    private var actionDimension: Int { interaction.actionDimension }

    /// The actor's mean and log standard deviation (clamped) for `observations`, on a tape.
    private func distribution(_ observations: Variable, _ parameters: [Variable]) -> (mean: Variable, logStd: Variable) {
        let output = actor(observations, parameters)
        return (
            output.sliceLast(0..<actionDimension),
            output.sliceLast(actionDimension..<2 * actionDimension).clamped(to: Self.logStdRange)
        )
    }

    /// Reparameterised squashed samples: actions tanh(mean + σ·ε) and their log-probabilities `[batch]`.
    private func sample(_ mean: Variable, _ logStd: Variable) -> (actions: Variable, logProbabilities: Variable) {
        let tape = mean.tape
        let noise = Tensor(shape: mean.shape, scalars: (0..<mean.value.count).map { _ in Float(generator.normal()) })
        let epsilon = tape.constant(noise)
        let raw = mean + logStd.exp() * epsilon
        let actions = raw.tanh()
        let gaussian =
            epsilon.squared().sumLast() * -0.5 - logStd.sumLast() - 0.5 * Float(actionDimension) * DiagonalGaussian.logTwoPi
        let squashing = (1 - actions.squared() + 1e-6).log().sumLast()
        return (actions, gaussian - squashing)
    }

    /// The smaller critic value of each row, from plain tensors (targets).
    private func minimumQ(_ networks: [[Tensor]], observations: Tensor, actions: Tensor) -> Tensor {
        let input = Tensor.concatenate([observations, actions], axis: 1)
        let values = networks.map { tensors -> Tensor in
            var network = critics[0]
            network.tensors = tensors
            return network.predict(input).reshaped([observations.shape[0]])
        }
        return values[0].zip(values[1]) { Swift.min($0, $1) }
    }

    public func act(_ observations: [Float], deterministic: Bool) -> [Float] {
        let batch = observations.count / interaction.observationDimension
        let output = actor.predict(Tensor(shape: [batch, interaction.observationDimension], scalars: observations))
        var scaled: [Float] = []
        for row in 0..<batch {
            for j in 0..<actionDimension {
                let mean = output.scalars[row * 2 * actionDimension + j]
                var value = mean
                if !deterministic {
                    let logStd = Swift.min(Swift.max(output.scalars[row * 2 * actionDimension + actionDimension + j], -20), 2)
                    value = mean + Foundation.exp(logStd) * Float(generator.normal())
                }
                scaled.append(Foundation.tanh(value))
            }
        }
        return (0..<batch).flatMap {
            interaction.environmentAction(Array(scaled[$0 * actionDimension..<($0 + 1) * actionDimension]))
        }
    }

    public var actingPolicy: ContinuousActor {
        ContinuousActor(kind: .squashedGaussian, network: actor, actionDimension: actionDimension)
    }

    public var randomSteps: Int { config.learningStarts }

    public var acting: OffPolicyActor { .continuous(.squashedGaussian, hidden: config.hidden) }

    public var actingWeights: [Float] { actingPolicy.flattened() }

    public func exploration(atStep step: Int) -> Float { step < config.learningStarts ? 1 : 0 }

    public func learn(from transitions: Transitions) {
        precondition(
            transitions.observationDimension == interaction.observationDimension
                && transitions.actionDimension == actionDimension,
            "transitions of widths \(transitions.observationDimension) and \(transitions.actionDimension) for a learner of \(interaction.observationDimension) and \(actionDimension)"
        )
        for row in 0..<transitions.count {
            buffer.add(row, of: transitions, discount: config.gamma)
            stepsDone += 1
            if stepsDone > config.learningStarts && stepsDone % config.trainFrequency == 0 {
                for _ in 0..<config.gradientSteps { update() }
            }
        }
        sampledElsewhere += transitions.episodeReturns
    }

    public func train(steps: Int) {
        for _ in 0..<steps {
            let scaled: [Float]
            if stepsDone < config.learningStarts {
                scaled = (0..<actionDimension).map { _ in Float(generator.uniform() * 2 - 1) }
            } else {
                let output = actor.predict(
                    Tensor(shape: [1, interaction.observationDimension], scalars: interaction.observation))
                scaled = (0..<actionDimension).map { j in
                    let logStd = Swift.min(Swift.max(output.scalars[actionDimension + j], -20), 2)
                    return Foundation.tanh(output.scalars[j] + Foundation.exp(logStd) * Float(generator.normal()))
                }
            }
            interaction.step(scaled, into: &buffer, gamma: config.gamma)
            stepsDone += 1
            if stepsDone > config.learningStarts && stepsDone % config.trainFrequency == 0 {
                for _ in 0..<config.gradientSteps { update() }
            }
        }
    }

    private func update() {
        let batch = buffer.sample(config.batchSize, using: &generator)
        let size = config.batchSize
        let width = interaction.observationDimension
        let observations = Tensor(shape: [size, width], scalars: batch.observations)
        let nextObservations = Tensor(shape: [size, width], scalars: batch.nextObservations)
        let actions = Tensor(shape: [size, actionDimension], scalars: batch.actions)
        let alpha = Foundation.exp(logAlpha.scalars[0])

        // Actor and entropy coefficient: actions sampled for the current observations.
        let actorTape = Tape()
        var actorParameters = actor.tensors
        let actorVariables = actorParameters.map { actorTape.variable($0) }
        let (mean, logStd) = distribution(actorTape.constant(observations), actorVariables)
        let (sampled, logProbabilities) = sample(mean, logStd)

        if config.tuneEntropy {
            // −log α · (log π + target entropy), the latter held fixed.
            let gap = logProbabilities.value.mean() + targetEntropy
            var parameters = [logAlpha]
            alphaOptimiser.update(&parameters, gradients: [Tensor(shape: [1], scalars: [-gap])])
            logAlpha = parameters[0]
        }

        // Critics toward r + γ(1 − d)(min target Q(s′, a′) − α log π(a′|s′)).
        let nextTape = Tape(recording: false)
        let (nextMean, nextLogStd) = distribution(
            nextTape.constant(nextObservations), actor.tensors.map { nextTape.constant($0) })
        let (nextActions, nextLogProbabilities) = sample(nextMean, nextLogStd)
        let nextQ = minimumQ(targetCritics, observations: nextObservations, actions: nextActions.value)
        let targets = Tensor(
            shape: [size],
            scalars: (0..<size).map { row in
                batch.rewards[row] + batch.discounts[row] * (1 - batch.terminals[row])
                    * (nextQ.scalars[row] - alpha * nextLogProbabilities.value.scalars[row])
            })
        let criticTape = Tape()
        var criticParameters = critics.flatMap(\.tensors)
        let criticVariables = criticParameters.map { criticTape.variable($0) }
        let perCritic = critics[0].tensors.count
        let input = criticTape.constant(Tensor.concatenate([observations, actions], axis: 1))
        var criticLoss: Variable?
        for (index, network) in critics.enumerated() {
            let q = network(input, Array(criticVariables[(index * perCritic)..<((index + 1) * perCritic)])).reshaped([size])
            let loss = q.meanSquaredError(targets) * 0.5
            criticLoss = criticLoss.map { $0 + loss } ?? loss
        }
        guard let criticLoss else { return }
        criticTape.backward(from: criticLoss)
        criticOptimiser.update(&criticParameters, gradients: criticVariables.map { $0.gradient ?? Tensor(shape: $0.shape) })
        for index in critics.indices {
            critics[index].tensors = Array(criticParameters[(index * perCritic)..<((index + 1) * perCritic)])
        }

        // Actor: α log π − min Q(s, ã), through the updated critics (held fixed); α from before its update.
        let actorInput = Variable.concatenate([actorTape.constant(observations), sampled], axis: 1)
        let qs = critics.map { network in network(actorInput, network.tensors.map { actorTape.constant($0) }).reshaped([size]) }
        let actorLoss = (logProbabilities * alpha - Variable.minimum(qs[0], qs[1])).mean()
        actorTape.backward(from: actorLoss)
        actorOptimiser.update(&actorParameters, gradients: actorVariables.map { $0.gradient ?? Tensor(shape: $0.shape) })
        actor.tensors = actorParameters

        for index in critics.indices { polyakUpdate(&targetCritics[index], toward: critics[index].tensors, tau: config.tau) }
        lastLosses = (actorLoss.value.scalars[0], criticLoss.value.scalars[0], Foundation.exp(logAlpha.scalars[0]))
    }

    public func checkpoint() -> [String: Tensor] {
        var named = ParameterNames.named(
            [("actor", actor.tensors), ("critic0", critics[0].tensors), ("critic1", critics[1].tensors)]
                + [("target0", targetCritics[0]), ("target1", targetCritics[1])])
        named["log_alpha"] = logAlpha
        return named
    }

    public func restore(_ saved: [String: Tensor]) throws {
        actor.tensors = try ParameterNames.take("actor", like: actor.tensors, from: saved)
        for index in critics.indices {
            critics[index].tensors = try ParameterNames.take("critic\(index)", like: critics[index].tensors, from: saved)
            targetCritics[index] = try ParameterNames.take("target\(index)", like: targetCritics[index], from: saved)
        }
        guard let alpha = saved["log_alpha"], alpha.shape == [1] else { throw AgentError("the checkpoint lacks log_alpha") }
        logAlpha = alpha
    }
}
