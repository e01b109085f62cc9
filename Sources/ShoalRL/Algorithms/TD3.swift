import Foundation
import ShoalMarket
import ShoalTensor

/// Twin Delayed DDPG (Fujimoto et al. 2018) as Stable-Baselines3 runs it: a deterministic tanh
/// actor explored with Gaussian noise, twin critics toward the smaller target value, target
/// policy smoothing (clipped noise on the target action), and the actor and every target
/// network updated only every `policyDelay` critic updates. Box actions only, learned in [−1, 1].
public final class TD3<Base: Environment>: OffPolicyLearner {
    public struct Config: Codable, Sendable, Equatable {
        public var learningRate: Float = 1e-3
        public var bufferSize = 1_000_000
        public var learningStarts = 100
        public var batchSize = 256
        public var tau: Float = 0.005
        public var gamma: Float = 0.99
        public var trainFrequency = 1
        public var gradientSteps = 1
        public var policyDelay = 2
        public var targetPolicyNoise: Float = 0.2
        public var targetNoiseClip: Float = 0.5
        /// The standard deviation of the exploration noise (on the [−1, 1] scale).
        public var explorationNoise: Float = 0.1
        public var hidden = [400, 300]
        public var seed: UInt64 = 0

        public init() {}

        public func validate() throws {
            guard learningRate > 0, bufferSize > 0, learningStarts >= 0, batchSize > 0, trainFrequency > 0, gradientSteps > 0,
                policyDelay > 0
            else { throw AgentError("TD3 needs a positive learning rate, buffer, batch, frequencies and policy delay") }
            guard (0...1).contains(tau), (0...1).contains(gamma), targetPolicyNoise >= 0, targetNoiseClip >= 0,
                explorationNoise >= 0
            else { throw AgentError("TD3: tau and gamma must be in [0, 1], noises not negative") }
            guard !hidden.isEmpty, hidden.allSatisfy({ $0 > 0 }) else { throw AgentError("TD3: hidden sizes must be positive") }
        }
    }

    public let name = "td3"
    public let config: Config
    public private(set) var stepsDone = 0
    public var episodeReturns: [Double] { interaction.returns + sampledElsewhere }
    /// Returns of episodes sampled by rollout workers.
    private var sampledElsewhere: [Double] = []
    public private(set) var lastLosses: (actor: Float, critic: Float) = (0, 0)

    private var interaction: OffPolicyInteraction<Base>
    private var buffer: ReplayBuffer
    private var actor: MLP
    private var targetActor: [Tensor]
    private var critics: [MLP]
    private var targetCritics: [[Tensor]]
    private var actorOptimiser: Adam
    private var criticOptimiser: Adam
    private var generator: SeededGenerator
    private var updates = 0

    public init(config: Config = Config(), environment: Base) throws {
        try config.validate()
        self.config = config
        interaction = try OffPolicyInteraction(environment: environment, seed: config.seed)
        let (inputs, actions) = (interaction.observationDimension, interaction.actionDimension)
        buffer = ReplayBuffer(capacity: config.bufferSize, observationDimension: inputs, actionDimension: actions)
        actor = MLP(sizes: [inputs] + config.hidden + [actions], activation: .relu, seed: config.seed &+ 11)
        targetActor = actor.tensors
        critics = (0..<2).map {
            MLP(sizes: [inputs + actions] + config.hidden + [1], activation: .relu, seed: config.seed &+ 21 &+ UInt64($0))
        }
        targetCritics = critics.map(\.tensors)
        actorOptimiser = Adam(learningRate: config.learningRate)
        criticOptimiser = Adam(learningRate: config.learningRate)
        generator = SeededGenerator(seed: config.seed &+ 31)
    }

    private var actionDimension: Int { interaction.actionDimension }

    /// The deterministic policy's actions in [−1, 1] from plain tensors.
    private func policy(_ tensors: [Tensor], _ observations: Tensor) -> Tensor {
        var network = actor
        network.tensors = tensors
        return network.predict(observations).tanh()
    }

    public func act(_ observations: [Float], deterministic: Bool) -> [Float] {
        let batch = observations.count / interaction.observationDimension
        var scaled = policy(actor.tensors, Tensor(shape: [batch, interaction.observationDimension], scalars: observations))
            .scalars
        if !deterministic {
            scaled = scaled.map { Swift.min(Swift.max($0 + config.explorationNoise * Float(generator.normal()), -1), 1) }
        }
        return (0..<batch).flatMap {
            interaction.environmentAction(Array(scaled[$0 * actionDimension..<($0 + 1) * actionDimension]))
        }
    }

    public var actingPolicy: ContinuousActor {
        ContinuousActor(kind: .deterministic(noise: config.explorationNoise), network: actor, actionDimension: actionDimension)
    }

    public var randomSteps: Int { config.learningStarts }

    public var acting: OffPolicyActor { .continuous(.deterministic(noise: config.explorationNoise), hidden: config.hidden) }

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
                let action = policy(
                    actor.tensors, Tensor(shape: [1, interaction.observationDimension], scalars: interaction.observation))
                scaled = action.scalars.map {
                    Swift.min(Swift.max($0 + config.explorationNoise * Float(generator.normal()), -1), 1)
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
        updates += 1
        let batch = buffer.sample(config.batchSize, using: &generator)
        let size = config.batchSize
        let width = interaction.observationDimension
        let observations = Tensor(shape: [size, width], scalars: batch.observations)
        let nextObservations = Tensor(shape: [size, width], scalars: batch.nextObservations)

        // Target: smoothed target action, the smaller target critic.
        var nextActions = policy(targetActor, nextObservations)
        nextActions.scalars = nextActions.scalars.map { value in
            let noise = Swift.min(
                Swift.max(config.targetPolicyNoise * Float(generator.normal()), -config.targetNoiseClip), config.targetNoiseClip)
            return Swift.min(Swift.max(value + noise, -1), 1)
        }
        let nextInput = Tensor.concatenate([nextObservations, nextActions], axis: 1)
        let nextQ = targetCritics.map { tensors -> [Float] in
            var network = critics[0]
            network.tensors = tensors
            return network.predict(nextInput).scalars
        }
        let targets = Tensor(
            shape: [size],
            scalars: (0..<size).map { row in
                batch.rewards[row] + batch.discounts[row] * (1 - batch.terminals[row]) * Swift.min(nextQ[0][row], nextQ[1][row])
            })

        let criticTape = Tape()
        var criticParameters = critics.flatMap(\.tensors)
        let criticVariables = criticParameters.map { criticTape.variable($0) }
        let perCritic = critics[0].tensors.count
        let input = criticTape.constant(
            Tensor.concatenate([observations, Tensor(shape: [size, actionDimension], scalars: batch.actions)], axis: 1))
        let losses = critics.enumerated().map { index, network in
            network(input, Array(criticVariables[(index * perCritic)..<((index + 1) * perCritic)])).reshaped([size])
                .meanSquaredError(targets)
        }
        let criticLoss = losses[0] + losses[1]
        criticTape.backward(from: criticLoss)
        criticOptimiser.update(&criticParameters, gradients: criticVariables.map { $0.gradient ?? Tensor(shape: $0.shape) })
        for index in critics.indices {
            critics[index].tensors = Array(criticParameters[(index * perCritic)..<((index + 1) * perCritic)])
        }
        lastLosses.critic = criticLoss.value.scalars[0]

        guard updates % config.policyDelay == 0 else { return }
        // Actor: −Q₁(s, π(s)), the critic held fixed; then every target moves.
        let actorTape = Tape()
        var actorParameters = actor.tensors
        let actorVariables = actorParameters.map { actorTape.variable($0) }
        let actions = actor(actorTape.constant(observations), actorVariables).tanh()
        let actorInput = Variable.concatenate([actorTape.constant(observations), actions], axis: 1)
        let actorLoss = -critics[0](actorInput, critics[0].tensors.map { actorTape.constant($0) }).mean()
        actorTape.backward(from: actorLoss)
        actorOptimiser.update(&actorParameters, gradients: actorVariables.map { $0.gradient ?? Tensor(shape: $0.shape) })
        actor.tensors = actorParameters
        lastLosses.actor = actorLoss.value.scalars[0]
        polyakUpdate(&targetActor, toward: actor.tensors, tau: config.tau)
        for index in critics.indices { polyakUpdate(&targetCritics[index], toward: critics[index].tensors, tau: config.tau) }
    }

    public func checkpoint() -> [String: Tensor] {
        ParameterNames.named(
            [
                ("actor", actor.tensors), ("target_actor", targetActor), ("critic0", critics[0].tensors),
                ("critic1", critics[1].tensors),
            ]
                + [("target0", targetCritics[0]), ("target1", targetCritics[1])])
    }

    public func restore(_ saved: [String: Tensor]) throws {
        actor.tensors = try ParameterNames.take("actor", like: actor.tensors, from: saved)
        targetActor = try ParameterNames.take("target_actor", like: targetActor, from: saved)
        for index in critics.indices {
            critics[index].tensors = try ParameterNames.take("critic\(index)", like: critics[index].tensors, from: saved)
            targetCritics[index] = try ParameterNames.take("target\(index)", like: targetCritics[index], from: saved)
        }
    }
}
