import ShoalMarket
import ShoalTensor

/// What acts for PPO: a policy network, a value network and, for box actions, the Gaussian's
/// state-independent log standard deviation. The learner trains one; rollout workers elsewhere
/// hold copies loaded from its `flattened()` parameters and act with them, each with its own
/// random generator.
public struct PPOPolicy: Sendable {
    public var policy: MLP
    public var value: MLP
    /// Empty for discrete actions.
    public var logStd: Tensor
    public let actionSpace: Space
    public let observationDimension: Int

    /// Networks of `hidden` sizes with Stable-Baselines3's orthogonal initialisation (gain √2 in
    /// hidden layers, 0.01 for the policy's head, 1 for the value's).
    /// - Throws: `AgentError` for hidden sizes that are not positive.
    public init(observationDimension: Int, actionSpace: Space, hidden: [Int], activation: MLP.Activation, seed: UInt64) throws {
        guard observationDimension > 0, !hidden.isEmpty, hidden.allSatisfy({ $0 > 0 }) else {
            throw AgentError("PPO: hidden sizes and the observation dimension must be positive")
        }
        self.observationDimension = observationDimension
        self.actionSpace = actionSpace
        let outputs = actionSpace.actions ?? actionSpace.dimension
        let gains = [Float](repeating: Float(2).squareRoot(), count: hidden.count)
        policy = MLP(
            sizes: [observationDimension] + hidden + [outputs], activation: activation,
            initialisation: .orthogonal(gains: gains + [0.01]), seed: seed &+ 1)
        value = MLP(
            sizes: [observationDimension] + hidden + [1], activation: activation, initialisation: .orthogonal(gains: gains + [1]),
            seed: seed &+ 2)
        logStd = Tensor(shape: [actionSpace.actions == nil ? outputs : 0])
    }

    public var continuous: Bool { actionSpace.actions == nil }

    /// Every parameter, in the learner's order: the policy's, the value's, then the log
    /// standard deviation for box actions.
    public var tensors: [Tensor] {
        get { policy.tensors + value.tensors + (continuous ? [logStd] : []) }
        set {
            let (p, v) = (policy.tensors.count, value.tensors.count)
            policy.tensors = Array(newValue[0..<p])
            value.tensors = Array(newValue[p..<(p + v)])
            if continuous { logStd = newValue[p + v] }
        }
    }

    /// Scalars in all the parameters.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.count } }

    /// The parameters laid end to end in `tensors` order: what the learner publishes.
    public func flattened() -> [Float] { FlatParameters.flatten(tensors) }

    /// Takes parameters published by `flattened()` of a policy of the same shape.
    /// - Throws: `AgentError` when the count differs.
    public mutating func load(flattened flat: [Float]) throws {
        tensors = try FlatParameters.unflatten(flat, like: tensors, what: "a PPO policy")
    }

    /// The values of a batch of observations.
    public func values(_ observations: Tensor) -> [Float] { value.predict(observations).scalars }

    /// One sampled step of the policy for a batch of observations: actions, their
    /// log-probabilities and the observations' values.
    public func decide(_ observations: Tensor, using generator: inout SeededGenerator) -> PolicyStep {
        let batch = observations.shape[0]
        let output = policy.predict(observations)
        let values = value.predict(observations).scalars
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

    /// Actions for a batch of observations as the environment takes them: the most likely (or
    /// the mean) when `deterministic`, else sampled.
    public func act(_ observations: [Float], deterministic: Bool, using generator: inout SeededGenerator) -> [Float] {
        let batch = observations.count / observationDimension
        let output = policy.predict(Tensor(shape: [batch, observationDimension], scalars: observations))
        if let actions = actionSpace.actions {
            if deterministic { return output.argmaxLast().map(Float.init) }
            return Categorical.sample(output.reshaped([batch, actions]), using: &generator).map(Float.init)
        }
        let raw = deterministic ? output.scalars : DiagonalGaussian.sample(mean: output, logStd: logStd, using: &generator)
        return clipped(raw)
    }

    /// Box actions clipped into the box's bounds.
    func clipped(_ actions: [Float]) -> [Float] {
        guard case .box(let low, let high) = actionSpace else { return actions }
        let width = low.count
        return actions.indices.map { Swift.min(Swift.max(actions[$0], low[$0 % width]), high[$0 % width]) }
    }
}
