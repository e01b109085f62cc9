import CShoalKernels
import ShoalMarket
import ShoalTensor

/// A multilayer perceptron: Linear layers in PyTorch's layout with an activation between them
/// (none after the last). Its parameters are plain tensors, so agents keep them in one list
/// for their optimiser and their checkpoints.
public struct MLP: Sendable {
    public enum Activation: String, Sendable, Codable {
        case tanh, relu
    }

    /// How weights start.
    public enum Initialisation: Sendable {
        /// PyTorch's `nn.Linear` default: uniform in ±1/√in, biases too.
        case pytorch
        /// Orthogonal weights scaled by a gain per layer, zero biases (Stable-Baselines3's
        /// on-policy default: √2 for hidden layers, then 0.01 for a policy head or 1 for a value head).
        case orthogonal(gains: [Float])
    }

    public var weights: [Tensor]
    public var biases: [Tensor]
    public let activation: Activation

    /// Layers of `sizes[0]` → `sizes[1]` → … → `sizes.last`.
    public init(sizes: [Int], activation: Activation, initialisation: Initialisation = .pytorch, seed: UInt64) {
        precondition(sizes.count >= 2 && sizes.allSatisfy { $0 > 0 }, "an MLP needs at least two positive sizes, not \(sizes)")
        self.activation = activation
        var weights: [Tensor] = []
        var biases: [Tensor] = []
        for layer in 0..<(sizes.count - 1) {
            let (inputs, outputs) = (sizes[layer], sizes[layer + 1])
            let layerSeed = seed &+ UInt64(layer) &* 7919
            switch initialisation {
            case .pytorch:
                let linear = Linear(inputs: inputs, outputs: outputs, seed: layerSeed)
                weights.append(linear.weight)
                biases.append(linear.bias)
            case .orthogonal(let gains):
                precondition(gains.count == sizes.count - 1, "one gain per layer")
                weights.append(Self.orthogonal(rows: outputs, columns: inputs, gain: gains[layer], seed: layerSeed))
                biases.append(Tensor(shape: [outputs]))
            }
        }
        self.weights = weights
        self.biases = biases
    }

    public var inputSize: Int { weights[0].shape[1] }
    public var outputSize: Int { weights[weights.count - 1].shape[0] }

    /// Weights and biases, layer by layer: `[w0, b0, w1, b1, …]`.
    public var tensors: [Tensor] {
        get { zip(weights, biases).flatMap { [$0, $1] } }
        set {
            precondition(
                newValue.count == 2 * weights.count, "an MLP of \(weights.count) layers takes \(2 * weights.count) tensors")
            for layer in weights.indices {
                precondition(
                    newValue[2 * layer].shape == weights[layer].shape && newValue[2 * layer + 1].shape == biases[layer].shape)
                weights[layer] = newValue[2 * layer]
                biases[layer] = newValue[2 * layer + 1]
            }
        }
    }

    /// The parameters as variables on `tape`, in the order of `tensors`.
    public func variables(on tape: Tape) -> [Variable] { tensors.map { tape.variable($0) } }

    /// The forward pass on a tape, with `parameters` from `variables(on:)`.
    public func callAsFunction(_ input: Variable, _ parameters: [Variable]) -> Variable {
        var x = input
        for layer in weights.indices {
            x = Variable.linear(x, weight: parameters[2 * layer], bias: parameters[2 * layer + 1])
            if layer < weights.count - 1 {
                x = activation == .tanh ? x.tanh() : x.relu()
            }
        }
        return x
    }

    /// The forward pass on plain tensors (acting, evaluation): no tape at all.
    public func predict(_ input: Tensor) -> Tensor {
        var x = input
        for layer in weights.indices {
            x = Self.affine(x, weights[layer], biases[layer])
            if layer < weights.count - 1 {
                x = activation == .tanh ? x.tanh() : x.relu()
            }
        }
        return x
    }

    /// `x · Wᵀ + b` on tensors.
    static func affine(_ x: Tensor, _ weight: Tensor, _ bias: Tensor) -> Tensor {
        Tensor.matmul(x, weight, transposeB: true) + bias
    }

    /// A `rows × columns` matrix with orthonormal rows or columns (whichever are fewer), times
    /// `gain`: Gram–Schmidt on Gaussian vectors, as `torch.nn.init.orthogonal_` in effect.
    public static func orthogonal(rows: Int, columns: Int, gain: Float, seed: UInt64) -> Tensor {
        let (count, length) = (min(rows, columns), max(rows, columns))
        var generator = SeededGenerator(seed: seed)
        var vectors = (0..<count).map { _ in (0..<length).map { _ in generator.normal() } }
        for i in 0..<count {
            for j in 0..<i {
                let projection = zip(vectors[i], vectors[j]).reduce(0) { $0 + $1.0 * $1.1 }
                for k in 0..<length { vectors[i][k] -= projection * vectors[j][k] }
            }
            let norm = vectors[i].reduce(0) { $0 + $1 * $1 }.squareRoot()
            for k in 0..<length { vectors[i][k] /= max(norm, 1e-12) }
        }
        var matrix = Tensor(shape: [rows, columns])
        for i in 0..<count {
            for k in 0..<length {
                let (row, column) = rows <= columns ? (i, k) : (k, i)
                matrix.scalars[row * columns + column] = Float(vectors[i][k]) * gain
            }
        }
        return matrix
    }
}

/// A target network's parameters moved toward the online network's: p ← τ·online + (1 − τ)·p
/// (τ = 1 copies).
public func polyakUpdate(_ target: inout [Tensor], toward online: [Tensor], tau: Float) {
    precondition(target.count == online.count, "polyakUpdate: \(target.count) targets for \(online.count) parameters")
    for index in target.indices {
        if tau >= 1 {
            target[index] = online[index]
            continue
        }
        online[index].withPointer { source in
            target[index].withMutablePointer { destination in
                shoal_affine(destination, 1 - tau, 0, destination, online[index].count)
                shoal_axpy(tau, source, destination, online[index].count)
            }
        }
    }
}
