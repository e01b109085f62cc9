import Foundation
import ShoalMarket
import ShoalTensor

/// Rainbow DQN (Hessel et al. 2018) for discrete actions, each of its six parts switchable:
/// double Q-learning (the online network picks the next action, the target network values
/// it), a dueling head (value + advantage − mean advantage), prioritised replay, n-step
/// returns, a distributional C51 head (the return's distribution on `atoms` fixed points,
/// the target projected onto them, a cross-entropy loss) and noisy linear layers in place of
/// ε-greedy exploration. With every part off it is the DQN of Mnih et al. (Huber loss,
/// ε-greedy), as Stable-Baselines3's.
public final class Rainbow<Base: Environment>: OffPolicyLearner {
    public struct Config: Codable, Sendable, Equatable {
        public var learningRate: Float = 1e-3
        public var adamEpsilon: Float = 1.5e-4
        public var bufferSize = 100_000
        public var learningStarts = 1000
        public var batchSize = 64
        public var gamma: Float = 0.99
        public var trainFrequency = 1
        public var gradientSteps = 1
        /// Copy the online network into the target network every this many updates.
        public var targetUpdateInterval = 250
        public var maxGradientNorm: Float = 10
        public var hidden = [128, 128]
        public var totalSteps = 100_000

        public var double = true
        public var dueling = true
        public var prioritized = true
        public var priorityAlpha: Float = 0.5
        /// The importance-sampling exponent, annealed from this to 1 over `totalSteps`.
        public var priorityBeta: Float = 0.4
        public var nStep = 3
        /// 1: no distribution (a Q-value per action, Huber loss).
        public var atoms = 51
        public var valueMin: Float = 0
        public var valueMax: Float = 100
        public var noisy = true
        public var noiseSigma: Float = 0.5
        /// ε-greedy (used without noisy layers): from 1 to `finalExploration` over this fraction of `totalSteps`.
        public var explorationFraction: Float = 0.1
        public var finalExploration: Float = 0.05
        public var seed: UInt64 = 0

        public init() {}

        /// Stable-Baselines3's DQN defaults: every Rainbow part off, a [64, 64] network, a
        /// batch of 32 every 4 steps, the target copied every 10,000 steps.
        public static var stableBaselinesDQN: Config {
            var config = Config()
            config.learningRate = 1e-4
            config.adamEpsilon = 1e-8
            config.bufferSize = 1_000_000
            config.learningStarts = 100
            config.batchSize = 32
            config.trainFrequency = 4
            config.targetUpdateInterval = 2500
            config.hidden = [64, 64]
            config.double = false
            config.dueling = false
            config.prioritized = false
            config.nStep = 1
            config.atoms = 1
            config.noisy = false
            config.finalExploration = 0.05
            config.maxGradientNorm = 10
            return config
        }

        public func validate() throws {
            guard learningRate > 0, bufferSize > 0, learningStarts >= 0, batchSize > 0, trainFrequency > 0, gradientSteps > 0,
                targetUpdateInterval > 0, totalSteps > 0, nStep > 0, atoms > 0
            else { throw AgentError("Rainbow needs positive sizes, frequencies, steps and atoms") }
            guard hidden.count == 2, hidden.allSatisfy({ $0 > 0 }) else {
                throw AgentError("Rainbow takes two hidden sizes (features, then each stream), not \(hidden)")
            }
            guard atoms == 1 || valueMax > valueMin else { throw AgentError("Rainbow: valueMax must be above valueMin") }
            guard (0...1).contains(gamma), (0...1).contains(priorityBeta), priorityAlpha >= 0 else {
                throw AgentError("Rainbow: gamma and priorityBeta must be in [0, 1], priorityAlpha not negative")
            }
        }
    }

    public let name = "rainbow"
    public let config: Config
    public private(set) var stepsDone = 0
    public private(set) var episodeReturns: [Double] = []
    public private(set) var lastLoss: Float = 0

    private var environment: Base
    private var observation: [Float]
    private var episodeReturn = 0.0
    private let actions: Int
    private var buffer: ReplayBuffer
    private var priorities: PrioritizedReplay?
    private var online: RainbowNetwork
    private var target: RainbowNetwork
    private var optimiser: Adam
    private var generator: SeededGenerator
    private var updates = 0
    /// The last n steps of each environment (stream 0 in this process; the group's copies for
    /// transitions from rollout workers), for n-step returns: observation, action, reward.
    private var windows: [Int: [(observation: [Float], action: Int, reward: Float)]] = [:]
    /// The next observation of each stream's last transition from workers: a window whose
    /// stream does not carry on from there (a replaced worker's fresh environment) is closed.
    private var lastNext: [Int: [Float]] = [:]
    private let support: [Float]
    /// The support as a column, for expected values.
    private let supportColumn: Tensor

    /// - Throws: `AgentError` for a bad configuration or an environment without discrete actions.
    public init(config: Config = Config(), environment: Base) throws {
        try config.validate()
        guard case .box = environment.observationSpace else { throw AgentError("Rainbow needs box observations") }
        guard let actions = environment.actionSpace.actions else { throw AgentError("Rainbow needs discrete actions") }
        self.config = config
        self.actions = actions
        self.environment = environment
        observation = self.environment.reset(seed: config.seed)
        let inputs = observation.count
        buffer = ReplayBuffer(capacity: config.bufferSize, observationDimension: inputs, actionDimension: 1)
        priorities = config.prioritized ? PrioritizedReplay(capacity: config.bufferSize, alpha: config.priorityAlpha) : nil
        online = RainbowNetwork(
            inputs: inputs, hidden: config.hidden, actions: actions, atoms: config.atoms, dueling: config.dueling,
            sigma: config.noiseSigma, seed: config.seed &+ 11)
        target = online
        optimiser = Adam(learningRate: config.learningRate)
        optimiser.epsilon = config.adamEpsilon
        generator = SeededGenerator(seed: config.seed &+ 31)
        support =
            config.atoms == 1
            ? [0]
            : (0..<config.atoms).map {
                config.valueMin + Float($0) * (config.valueMax - config.valueMin) / Float(config.atoms - 1)
            }
        supportColumn = Tensor(shape: [support.count, 1], scalars: support)
        if config.noisy {
            online.resetNoise(using: &generator)
            target.resetNoise(using: &generator)
        }
    }

    public func act(_ observations: [Float], deterministic: Bool) -> [Float] {
        let batch = observations.count / observation.count
        let values = online.values(
            Tensor(shape: [batch, observation.count], scalars: observations), support: supportColumn,
            noisy: config.noisy && !deterministic)
        return values.argmaxLast().map(Float.init)
    }

    /// The policy as it acts now, for a rollout worker (`QActor.load(flattened:)` of its weights).
    public var actingQ: QActor {
        QActor(
            shape: QActor.Shape(
                inputs: observation.count, hidden: config.hidden, actions: actions, atoms: config.atoms, dueling: config.dueling,
                noisy: config.noisy, sigma: config.noiseSigma, valueMin: config.valueMin, valueMax: config.valueMax),
            network: online)
    }

    public var acting: OffPolicyActor { .q(actingQ.shape) }

    public var actingWeights: [Float] { FlatParameters.flatten(online.tensors) }

    public func exploration(atStep step: Int) -> Float { step < config.learningStarts ? 1 : epsilon(atStep: step) }

    /// The transitions stored so far.
    var replay: ReplayBuffer { buffer }

    /// The current chance of a uniformly random action (ε; 0 with noisy layers).
    public var explorationRate: Float { epsilon(atStep: stepsDone) }

    /// ε at environment step `step`: from 1 to the final value over the exploration fraction
    /// of the run (0 with noisy layers).
    private func epsilon(atStep step: Int) -> Float {
        guard !config.noisy else { return 0 }
        let progress = Float(step) / Swift.max(1, config.explorationFraction * Float(config.totalSteps))
        return 1 + Swift.min(1, progress) * (config.finalExploration - 1)
    }

    public func train(steps: Int) {
        for _ in 0..<steps {
            let action: Int
            if stepsDone < config.learningStarts || Float(generator.uniform()) < explorationRate {
                action = Int(generator.next() % UInt64(actions))
            } else {
                action = Int(act(observation, deterministic: false)[0])
            }
            let outcome = environment.step([Float(action)])
            episodeReturn += outcome.reward
            remember(
                stream: 0, observation: observation, action: action, reward: Float(outcome.reward), next: outcome.observation,
                terminated: outcome.terminated, done: outcome.done)
            if outcome.done {
                episodeReturns.append(episodeReturn)
                episodeReturn = 0
                observation = environment.reset(seed: nil)
            } else {
                observation = outcome.observation
            }
            stepsDone += 1
            if stepsDone > config.learningStarts && stepsDone % config.trainFrequency == 0 {
                for _ in 0..<config.gradientSteps { update() }
            }
        }
    }

    /// Stores transitions sampled by rollout workers (one step each, of the group's
    /// environment copies), joining each copy's consecutive steps into n-step transitions, and
    /// makes the updates their steps are due.
    public func learn(from transitions: Transitions) {
        let width = observation.count
        precondition(
            transitions.observationDimension == width && transitions.actionDimension == 1,
            "transitions of widths \(transitions.observationDimension) and \(transitions.actionDimension) for a learner of \(width) and 1"
        )
        let ends = Set(transitions.episodeEnds)
        for row in 0..<transitions.count {
            let stream = transitions.streams[row]
            let before = Array(transitions.observations[(row * width)..<((row + 1) * width)])
            let next = Array(transitions.nextObservations[(row * width)..<((row + 1) * width)])
            if let last = lastNext[stream], windows[stream]?.isEmpty == false, last != before {
                close(stream, next: last, terminated: false)
            }
            let terminated = transitions.terminals[row] == 1
            remember(
                stream: stream, observation: before, action: Int(transitions.actions[row]), reward: transitions.rewards[row],
                next: next, terminated: terminated, done: terminated || ends.contains(row))
            lastNext[stream] = next
            stepsDone += 1
            if stepsDone > config.learningStarts && stepsDone % config.trainFrequency == 0 {
                for _ in 0..<config.gradientSteps { update() }
            }
        }
        episodeReturns += transitions.episodeReturns
    }

    /// Adds the step to its stream's n-step window and stores the transitions it completes.
    private func remember(
        stream: Int, observation: [Float], action: Int, reward: Float, next: [Float], terminated: Bool, done: Bool
    ) {
        windows[stream, default: []].append((observation, action, reward))
        if done {
            close(stream, next: next, terminated: terminated)
        } else if windows[stream]?.count == config.nStep {
            store(stream, upTo: config.nStep, next: next, terminated: terminated)
        }
    }

    /// Stores every transition left in the stream's window, each as far as the window's end.
    private func close(_ stream: Int, next: [Float], terminated: Bool) {
        while let count = windows[stream]?.count, count > 0 { store(stream, upTo: count, next: next, terminated: terminated) }
    }

    /// Stores the window's first step with the discounted rewards of its first `count` steps
    /// and `next` after them, then drops it from the window.
    private func store(_ stream: Int, upTo count: Int, next: [Float], terminated: Bool) {
        guard let window = windows[stream], let first = window.first else { return }
        var total: Float = 0
        var discount: Float = 1
        for step in window.prefix(count) {
            total += discount * step.reward
            discount *= config.gamma
        }
        let index = buffer.add(
            observation: first.observation[...], action: [Float(first.action)][...], reward: total,
            nextObservation: next[...], terminal: terminated, discount: discount)
        priorities?.setPriority(index)
        windows[stream]?.removeFirst()
    }

    private func update() {
        updates += 1
        let size = config.batchSize
        let width = observation.count
        let beta = config.priorityBeta + (1 - config.priorityBeta) * Swift.min(1, Float(stepsDone) / Float(config.totalSteps))
        let sampled = priorities.map { $0.sample(size, count: buffer.count, beta: beta, using: &generator) }
        let batch = sampled.map { buffer.gather($0.indices) } ?? buffer.sample(size, using: &generator)
        let weights = sampled?.weights ?? [Float](repeating: 1, count: size)
        let chosen = batch.actions.map { Int($0) }
        let nextObservations = Tensor(shape: [size, width], scalars: batch.nextObservations)
        if config.noisy {
            online.resetNoise(using: &generator)
            target.resetNoise(using: &generator)
        }
        // The next action: by the online network (double) or the target network.
        let nextValues = (config.double ? online : target).values(nextObservations, support: supportColumn, noisy: config.noisy)
        let nextActions = nextValues.argmaxLast()

        let tape = Tape()
        var parameters = online.tensors
        let variables = parameters.map { tape.variable($0) }
        let logits = online(
            tape.constant(Tensor(shape: [size, width], scalars: batch.observations)), variables, noisy: config.noisy)
        let perSample: Variable
        if config.atoms == 1 {
            let q = logits.reshaped([size, actions]).gather(chosen)
            // Double: the target network values the online network's choice.
            let values = config.double ? target.values(nextObservations, support: supportColumn, noisy: config.noisy) : nextValues
            let targets = (0..<size).map { row in
                batch.rewards[row] + batch.discounts[row] * (1 - batch.terminals[row])
                    * values.scalars[row * actions + nextActions[row]]
            }
            // Huber (smooth L1) per sample.
            let difference = q - tape.constant(Tensor(shape: [size], scalars: targets))
            perSample = Variable.minimum(difference.squared() * 0.5, difference.magnitude() - 0.5)
        } else {
            let projected = projectedTargets(nextObservations, nextActions: nextActions, batch: batch)
            let logProbabilities = logits.logSoftmax().selecting(chosen)
            perSample = -(tape.constant(projected) * logProbabilities).sumLast()
        }
        let loss = (perSample * tape.constant(Tensor(shape: [size], scalars: weights))).mean()
        tape.backward(from: loss)
        var gradients = variables.map { $0.gradient ?? Tensor(shape: $0.shape) }
        clipGradients(&gradients, maxNorm: config.maxGradientNorm)
        optimiser.update(&parameters, gradients: gradients)
        online.tensors = parameters
        lastLoss = loss.value.scalars[0]
        if let sampled {
            for (index, priority) in zip(sampled.indices, perSample.value.scalars) {
                priorities?.setPriority(index, Double(Swift.abs(priority)) + 1e-6)
            }
        }
        if updates % config.targetUpdateInterval == 0 { target.tensors = online.tensors }
    }

    /// The C51 target: the target network's distribution for the chosen next action, shifted
    /// by reward and discount and projected back onto the support: `[batch, atoms]`.
    func projectedTargets(_ nextObservations: Tensor, nextActions: [Int], batch: ReplayBuffer.Batch) -> Tensor {
        let (size, atoms) = (nextActions.count, config.atoms)
        let tape = Tape(recording: false)
        let logits = target(tape.constant(nextObservations), target.tensors.map { tape.constant($0) }, noisy: config.noisy)
        let probabilities = logits.softmax().selecting(nextActions).value
        let delta = (config.valueMax - config.valueMin) / Float(atoms - 1)
        var projected = Tensor(shape: [size, atoms])
        for row in 0..<size {
            let discount = batch.discounts[row] * (1 - batch.terminals[row])
            for j in 0..<atoms {
                let shifted = Swift.min(Swift.max(batch.rewards[row] + discount * support[j], config.valueMin), config.valueMax)
                let position = (shifted - config.valueMin) / delta
                let (lower, upper) = (Int(position.rounded(.down)), Int(position.rounded(.up)))
                let mass = probabilities.scalars[row * atoms + j]
                if lower == upper {
                    projected.scalars[row * atoms + lower] += mass
                } else {
                    projected.scalars[row * atoms + lower] += mass * (Float(upper) - position)
                    projected.scalars[row * atoms + upper] += mass * (position - Float(lower))
                }
            }
        }
        return projected
    }

    public func checkpoint() -> [String: Tensor] {
        ParameterNames.named([("online", online.tensors), ("target", target.tensors)])
    }

    public func restore(_ saved: [String: Tensor]) throws {
        online.tensors = try ParameterNames.take("online", like: online.tensors, from: saved)
        target.tensors = try ParameterNames.take("target", like: target.tensors, from: saved)
    }
}

/// The network: a feature layer, then one stream (or value and advantage streams) of two
/// layers each, giving `[batch, actions, atoms]` logits.
struct RainbowNetwork: Sendable {
    var feature: Linear
    var streams: [[NoisyLinear]]
    let actions: Int
    let atoms: Int
    let dueling: Bool

    init(inputs: Int, hidden: [Int], actions: Int, atoms: Int, dueling: Bool, sigma: Float, seed: UInt64) {
        feature = Linear(inputs: inputs, outputs: hidden[0], seed: seed)
        func stream(_ outputs: Int, _ offset: UInt64) -> [NoisyLinear] {
            [
                NoisyLinear(inputs: hidden[0], outputs: hidden[1], sigma0: sigma, seed: seed &+ offset),
                NoisyLinear(inputs: hidden[1], outputs: outputs, sigma0: sigma, seed: seed &+ offset &+ 2),
            ]
        }
        streams = dueling ? [stream(atoms, 10), stream(actions * atoms, 20)] : [stream(actions * atoms, 10)]
        self.actions = actions
        self.atoms = atoms
        self.dueling = dueling
    }

    var tensors: [Tensor] {
        get { [feature.weight, feature.bias] + streams.flatMap { $0.flatMap(\.tensors) } }
        set {
            feature.weight = newValue[0]
            feature.bias = newValue[1]
            var offset = 2
            for s in streams.indices {
                for l in streams[s].indices {
                    streams[s][l].tensors = Array(newValue[offset..<(offset + 4)])
                    offset += 4
                }
            }
        }
    }

    mutating func resetNoise(using generator: inout SeededGenerator) {
        for s in streams.indices { for l in streams[s].indices { streams[s][l].resetNoise(using: &generator) } }
    }

    /// `[batch, actions, atoms]` logits (Q-values when atoms is 1).
    func callAsFunction(_ x: Variable, _ parameters: [Variable], noisy: Bool) -> Variable {
        let batch = x.shape[0]
        let hidden = Variable.linear(x, weight: parameters[0], bias: parameters[1]).relu()
        var offset = 2
        let outputs = streams.map { stream -> Variable in
            var h = hidden
            for (index, layer) in stream.enumerated() {
                h = layer(h, parameters[offset..<(offset + 4)], noisy: noisy)
                offset += 4
                if index < stream.count - 1 { h = h.relu() }
            }
            return h
        }
        guard dueling else { return outputs[0].reshaped([batch, actions, atoms]) }
        let advantage = outputs[1].reshaped([batch, actions, atoms])
        let base = (outputs[0] - advantage.meanMiddle()).reshaped([batch, 1, atoms])
        return advantage + Variable.concatenate([Variable](repeating: base, count: actions), axis: 1)
    }

    /// Expected values `[batch, actions]` from plain tensors.
    func values(_ observations: Tensor, support: Tensor, noisy: Bool) -> Tensor {
        let batch = observations.shape[0]
        var hidden = Tensor.matmul(observations, feature.weight, transposeB: true) + feature.bias
        hidden = hidden.relu()
        let outputs = streams.map { stream -> Tensor in
            var h = hidden
            for (index, layer) in stream.enumerated() {
                h = layer.predict(h, noisy: noisy)
                if index < stream.count - 1 { h = h.relu() }
            }
            return h
        }
        var logits = outputs[dueling ? 1 : 0].reshaped([batch * actions, atoms])
        if dueling {
            // value + advantage − mean advantage, row by row.
            let advantage = logits.reshaped([batch, actions * atoms])
            for b in 0..<batch {
                for j in 0..<atoms {
                    var mean: Float = 0
                    for a in 0..<actions { mean += advantage.scalars[b * actions * atoms + a * atoms + j] }
                    let shift = outputs[0].scalars[b * atoms + j] - mean / Float(actions)
                    for a in 0..<actions { logits.scalars[(b * actions + a) * atoms + j] += shift }
                }
            }
        }
        guard atoms > 1 else { return logits.reshaped([batch, actions]) }
        return Tensor.matmul(logits.softmax(), support).reshaped([batch, actions])
    }
}
