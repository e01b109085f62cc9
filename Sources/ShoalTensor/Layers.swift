import Foundation

/// A fully connected layer in PyTorch's layout: `weight` `[out, in]`, `bias` `[out]`,
/// initialised as `nn.Linear` does (uniform in ±1/√in), from a seed.
public struct Linear: Sendable {
    public var weight: Tensor
    public var bias: Tensor

    public init(inputs: Int, outputs: Int, seed: UInt64) {
        let bound = 1 / Float(inputs).squareRoot()
        weight = .randomUniform(shape: [outputs, inputs], bound: bound, seed: seed)
        bias = .randomUniform(shape: [outputs], bound: bound, seed: seed &+ 1)
    }

    /// Its parameters on `tape`, to use in a forward pass and read gradients from.
    public func parameters(on tape: Tape) -> (weight: Variable, bias: Variable) {
        (tape.variable(weight), tape.variable(bias))
    }
}

/// Adam (and AdamW with `weightDecay`): per-parameter first and second moment estimates with
/// bias correction.
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    public var weightDecay: Float = 0
    private var moments: [[Float]] = []
    private var squares: [[Float]] = []
    private var step = 0

    public init(learningRate: Float = 1e-3, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }

    /// Updates `parameters` in place from their gradients (same order every call).
    public mutating func update(_ parameters: inout [Tensor], gradients: [Tensor]) {
        precondition(parameters.count == gradients.count, "one gradient per parameter")
        if moments.isEmpty {
            moments = parameters.map { [Float](repeating: 0, count: $0.count) }
            squares = moments
        }
        step += 1
        let correction1 = 1 - pow(beta1, Float(step))
        let correction2 = 1 - pow(beta2, Float(step))
        for index in parameters.indices {
            precondition(parameters[index].shape == gradients[index].shape, "gradient \(index) has the wrong shape")
            for element in 0..<parameters[index].count {
                let g = gradients[index].scalars[element]
                moments[index][element] = beta1 * moments[index][element] + (1 - beta1) * g
                squares[index][element] = beta2 * squares[index][element] + (1 - beta2) * g * g
                let mHat = moments[index][element] / correction1
                let vHat = squares[index][element] / correction2
                var value = parameters[index].scalars[element]
                if weightDecay > 0 { value -= learningRate * weightDecay * value }
                parameters[index].scalars[element] = value - learningRate * mHat / (vHat.squareRoot() + epsilon)
            }
        }
    }
}
