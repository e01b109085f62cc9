import Foundation
import ShoalMarket
import ShoalTensor

/// Transitions of off-policy learning sampled away from the learner, column by column
/// (`[count × width]` each), with the returns of the episodes that ended among them. It travels
/// between processes as its raw float buffers.
public struct Transitions: Sendable, Codable {
    public let observationDimension: Int
    public let actionDimension: Int
    public var observations: [Float] = []
    /// Actions in [−1, 1] per dimension, the learner's scale.
    public var actions: [Float] = []
    public var rewards: [Float] = []
    public var nextObservations: [Float] = []
    /// 1 where the episode terminated after the transition (no bootstrapping).
    public var terminals: [Float] = []
    /// The environment copy (of the whole group of workers) each transition came from: a
    /// learner that joins consecutive steps (n-step returns) follows each copy apart.
    public var streams: [Int] = []
    public var episodeReturns: [Double] = []
    /// The transition that ended each of those episodes.
    public var episodeEnds: [Int] = []

    public init(observationDimension: Int, actionDimension: Int) {
        self.observationDimension = observationDimension
        self.actionDimension = actionDimension
    }

    public var count: Int { rewards.count }

    private enum CodingKeys: String, CodingKey {
        case observationDimension, actionDimension, observations, actions, rewards, nextObservations, terminals, episodeReturns
        case episodeEnds, streams
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        observationDimension = try container.decode(Int.self, forKey: .observationDimension)
        actionDimension = try container.decode(Int.self, forKey: .actionDimension)
        observations = try container.decode([Float].self, forKey: .observations)
        actions = try container.decode([Float].self, forKey: .actions)
        rewards = try container.decode([Float].self, forKey: .rewards)
        nextObservations = try container.decode([Float].self, forKey: .nextObservations)
        terminals = try container.decode([Float].self, forKey: .terminals)
        episodeReturns = try container.decode([Double].self, forKey: .episodeReturns)
        episodeEnds = try container.decode([Int].self, forKey: .episodeEnds)
        streams = try container.decode([Int].self, forKey: .streams)
        let count = rewards.count
        guard observationDimension > 0, actionDimension > 0, observations.count == count * observationDimension,
            nextObservations.count == observations.count, actions.count == count * actionDimension, terminals.count == count,
            streams.count == count,
            episodeEnds.count == episodeReturns.count, episodeEnds.allSatisfy({ (0..<count).contains($0) })
        else {
            throw DecodingError.dataCorruptedError(
                forKey: .observations, in: container,
                debugDescription:
                    "the buffers do not match \(count) transitions of widths \(observationDimension) and \(actionDimension)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(observationDimension, forKey: .observationDimension)
        try container.encode(actionDimension, forKey: .actionDimension)
        try container.encode(observations, forKey: .observations)
        try container.encode(actions, forKey: .actions)
        try container.encode(rewards, forKey: .rewards)
        try container.encode(nextObservations, forKey: .nextObservations)
        try container.encode(terminals, forKey: .terminals)
        try container.encode(episodeReturns, forKey: .episodeReturns)
        try container.encode(episodeEnds, forKey: .episodeEnds)
        try container.encode(streams, forKey: .streams)
    }

    /// The first `count` transitions, with the returns of the episodes that ended among them.
    public func prefix(_ count: Int) -> Transitions {
        guard count < self.count else { return self }
        var cut = Transitions(observationDimension: observationDimension, actionDimension: actionDimension)
        cut.observations = Array(observations[0..<(count * observationDimension)])
        cut.actions = Array(actions[0..<(count * actionDimension)])
        cut.rewards = Array(rewards[0..<count])
        cut.nextObservations = Array(nextObservations[0..<(count * observationDimension)])
        cut.terminals = Array(terminals[0..<count])
        cut.streams = Array(streams[0..<count])
        for (end, value) in zip(episodeEnds, episodeReturns) where end < count {
            cut.episodeEnds.append(end)
            cut.episodeReturns.append(value)
        }
        return cut
    }

    /// Several workers' transitions as one batch, in the order given.
    /// - Throws: `AgentError` when their widths differ.
    public static func joined(_ parts: [Transitions]) throws -> Transitions {
        guard let first = parts.first else { throw AgentError("no transitions to join") }
        var joined = Transitions(observationDimension: first.observationDimension, actionDimension: first.actionDimension)
        for part in parts {
            guard part.observationDimension == first.observationDimension, part.actionDimension == first.actionDimension else {
                throw AgentError("transitions of different widths cannot be joined")
            }
            joined.episodeEnds += part.episodeEnds.map { $0 + joined.count }
            joined.observations += part.observations
            joined.actions += part.actions
            joined.rewards += part.rewards
            joined.nextObservations += part.nextObservations
            joined.terminals += part.terminals
            joined.streams += part.streams
            joined.episodeReturns += part.episodeReturns
        }
        return joined
    }
}

/// How an off-policy learner's policy acts, apart from the learner: the actor network and
/// its exploration, loadable from the learner's published weights. Actions come out in
/// [−1, 1] per dimension.
public struct ContinuousActor: Sendable {
    public enum Kind: Codable, Sendable, Equatable {
        /// SAC's: tanh of a Gaussian whose mean and log standard deviation the network gives.
        case squashedGaussian
        /// TD3's: tanh of the network's output plus Gaussian noise of this deviation, clipped.
        case deterministic(noise: Float)
    }

    public let kind: Kind
    public var network: MLP
    public let actionDimension: Int

    /// An actor of `hidden` sizes (weights to be loaded) for observations of `observationDimension`.
    public init(kind: Kind, observationDimension: Int, actionDimension: Int, hidden: [Int]) throws {
        guard observationDimension > 0, actionDimension > 0, !hidden.isEmpty, hidden.allSatisfy({ $0 > 0 }) else {
            throw AgentError("an actor needs positive sizes")
        }
        self.kind = kind
        self.actionDimension = actionDimension
        let outputs = kind == .squashedGaussian ? 2 * actionDimension : actionDimension
        network = MLP(sizes: [observationDimension] + hidden + [outputs], activation: .relu, seed: 0)
    }

    init(kind: Kind, network: MLP, actionDimension: Int) {
        self.kind = kind
        self.network = network
        self.actionDimension = actionDimension
    }

    /// The network's parameters laid end to end.
    public func flattened() -> [Float] { FlatParameters.flatten(network.tensors) }

    /// The hidden layers' sizes.
    public var hiddenSizes: [Int] { network.weights.dropLast().map { $0.shape[0] } }

    /// Takes parameters published by `flattened()` of an actor of the same shape.
    /// - Throws: `AgentError` when the count differs.
    public mutating func load(flattened flat: [Float]) throws {
        network.tensors = try FlatParameters.unflatten(flat, like: network.tensors, what: "an actor")
    }

    /// Exploring actions in [−1, 1] for a batch of observations (`random`: uniformly random,
    /// as before learning starts).
    public func act(_ observations: [Float], random: Bool, using generator: inout SeededGenerator) -> [Float] {
        let width = network.inputSize
        let batch = observations.count / width
        if random { return (0..<(batch * actionDimension)).map { _ in Float(generator.uniform() * 2 - 1) } }
        let output = network.predict(Tensor(shape: [batch, width], scalars: observations)).scalars
        var actions = [Float]()
        actions.reserveCapacity(batch * actionDimension)
        for row in 0..<batch {
            for j in 0..<actionDimension {
                switch kind {
                case .squashedGaussian:
                    let logStd = Swift.min(Swift.max(output[row * 2 * actionDimension + actionDimension + j], -20), 2)
                    let mean = output[row * 2 * actionDimension + j]
                    actions.append(Foundation.tanh(mean + Foundation.exp(logStd) * Float(generator.normal())))
                case .deterministic(let noise):
                    let value = Foundation.tanh(output[row * actionDimension + j]) + noise * Float(generator.normal())
                    actions.append(Swift.min(Swift.max(value, -1), 1))
                }
            }
        }
        return actions
    }
}

/// How an off-policy learner acts, by shape: what a rollout worker builds to act for it
/// (the weights come from `OffPolicyLearner.actingWeights`).
public enum OffPolicyActor: Codable, Sendable, Equatable {
    /// SAC's or TD3's actor network (`ContinuousActor`): box actions.
    case continuous(ContinuousActor.Kind, hidden: [Int])
    /// Rainbow's or DQN's online network (`QActor`): discrete actions.
    case q(QActor.Shape)

    /// Whether its actions are discrete.
    public var isDiscrete: Bool {
        if case .q = self { return true }
        return false
    }
}

/// An off-policy learner whose environment steps can be taken elsewhere (rollout workers):
/// it publishes how it acts, and learns from transitions sampled with that.
public protocol OffPolicyLearner: Agent {
    /// The acting network's shape.
    var acting: OffPolicyActor { get }
    /// The acting network's parameters now, laid end to end.
    var actingWeights: [Float] { get }
    /// The chance of a uniformly random action in place of the policy's at environment step
    /// `step` of the run: 1 before learning starts; then ε for an ε-greedy learner, 0 for one
    /// that explores through its own noise (SAC, TD3, noisy layers).
    func exploration(atStep step: Int) -> Float
    /// Stores transitions sampled elsewhere and makes the updates their steps are due (the
    /// gradient steps per environment step stay the configuration's).
    func learn(from transitions: Transitions)
}

/// Steps a set of environments for an off-policy learner and records the transitions: the
/// rollout worker's side of off-policy learning.
public struct TransitionCollector<Base: Environment>: Sendable {
    private var interactions: [OffPolicyInteraction<Base>]

    /// The group's index of this collector's first environment (its transitions' streams).
    public let firstStream: Int

    /// `count` copies made by `make(i)`, copy i reset with seed `seed + i`, numbered from
    /// `firstStream` in the group.
    /// - Parameter discrete: actions are discrete indices (for a Q-learner), else a box.
    /// - Throws: `AgentError` when the environment lacks box observations, or the action space
    ///   (discrete, or a box with finite bounds) asked for.
    public init(count: Int, seed: UInt64, firstStream: Int = 0, discrete: Bool = false, make: (Int) -> Base) throws {
        guard count > 0 else { throw AgentError("a transition collector needs at least one environment") }
        interactions = try (0..<count).map {
            try OffPolicyInteraction(environment: make($0), seed: seed &+ UInt64($0), discrete: discrete)
        }
        self.firstStream = firstStream
    }

    public var observationDimension: Int { interactions[0].observationDimension }
    public var actionDimension: Int { interactions[0].actionDimension }

    /// `steps` steps of every environment; `act` answers a `[count × observation dimension]`
    /// batch with actions (in [−1, 1] for a box, indices for discrete actions).
    public mutating func collect(steps: Int, act: ([Float]) -> [Float]) -> Transitions {
        var transitions = Transitions(observationDimension: observationDimension, actionDimension: actionDimension)
        let (count, width) = (interactions.count, actionDimension)
        transitions.observations.reserveCapacity(steps * count * observationDimension)
        for _ in 0..<steps {
            let actions = act(interactions.flatMap(\.observation))
            for index in interactions.indices {
                interactions[index].step(
                    Array(actions[(index * width)..<((index + 1) * width)]), stream: firstStream + index, into: &transitions)
            }
        }
        return transitions
    }

    /// Resets every environment (copy i with seed `seed + i`).
    public mutating func reset(seed: UInt64) {
        for index in interactions.indices { interactions[index].reset(seed: seed &+ UInt64(index)) }
    }
}
