import ShoalMarket
import ShoalTensor

/// How a Rainbow (or DQN) learner acts, apart from the learner: its online network and value
/// support, loadable from the learner's published weights, acting ε-greedily on the expected
/// values (with noisy layers, on a fresh draw of their noise). The value type a rollout worker
/// holds for a discrete off-policy learner.
public struct QActor: Sendable {
    /// The network's shape and the value support: all a worker needs to build one.
    public struct Shape: Codable, Sendable, Equatable {
        public var inputs: Int
        public var hidden: [Int]
        public var actions: Int
        public var atoms: Int
        public var dueling: Bool
        public var noisy: Bool
        public var sigma: Float
        public var valueMin: Float
        public var valueMax: Float
    }

    public let shape: Shape
    var network: RainbowNetwork
    let support: Tensor

    /// An actor of `shape` (weights to be loaded).
    /// - Throws: `AgentError` for sizes that are not positive.
    public init(shape: Shape) throws {
        guard shape.inputs > 0, shape.actions > 0, shape.atoms > 0, shape.hidden.count >= 2, shape.hidden.allSatisfy({ $0 > 0 })
        else { throw AgentError("a Q actor needs positive sizes and two hidden layers") }
        self.shape = shape
        network = RainbowNetwork(
            inputs: shape.inputs, hidden: shape.hidden, actions: shape.actions, atoms: shape.atoms, dueling: shape.dueling,
            sigma: shape.sigma, seed: 0)
        support = Self.support(shape)
    }

    init(shape: Shape, network: RainbowNetwork) {
        self.shape = shape
        self.network = network
        support = Self.support(shape)
    }

    /// The support of the value distribution as a column (one atom: the expected value itself).
    static func support(_ shape: Shape) -> Tensor {
        let atoms =
            shape.atoms == 1
            ? [Float(0)]
            : (0..<shape.atoms).map {
                shape.valueMin + Float($0) * (shape.valueMax - shape.valueMin) / Float(shape.atoms - 1)
            }
        return Tensor(shape: [atoms.count, 1], scalars: atoms)
    }

    /// The network's parameters laid end to end (noise excluded).
    public func flattened() -> [Float] { FlatParameters.flatten(network.tensors) }

    /// Takes parameters published by `flattened()` of an actor of the same shape.
    /// - Throws: `AgentError` when the count differs.
    public mutating func load(flattened flat: [Float]) throws {
        network.tensors = try FlatParameters.unflatten(flat, like: network.tensors, what: "a Q actor")
    }

    /// Actions (each an index, as a float) for a batch of observations: uniformly random with
    /// probability `epsilon`, else the largest expected value (noisy layers drawing new noise
    /// first, when the shape has them and `deterministic` is false).
    public mutating func act(
        _ observations: [Float], epsilon: Float, deterministic: Bool = false, using generator: inout SeededGenerator
    ) -> [Float] {
        let batch = observations.count / shape.inputs
        let noisy = shape.noisy && !deterministic
        if noisy { network.resetNoise(using: &generator) }
        let greedy = network.values(
            Tensor(shape: [batch, shape.inputs], scalars: observations), support: support, noisy: noisy
        ).argmaxLast()
        return greedy.map { action in
            epsilon > 0 && Float(generator.uniform()) < epsilon
                ? Float(Int(generator.next() % UInt64(shape.actions))) : Float(action)
        }
    }
}
