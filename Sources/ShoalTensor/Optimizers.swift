import Foundation

/// Stochastic gradient descent with momentum (PyTorch's form: v = μv + g; p −= lr · v), and
/// optional weight decay added to the gradient.
public struct SGD: Sendable {
    public var learningRate: Float
    public var momentum: Float
    public var weightDecay: Float
    private var velocity: [[Float]] = []

    public init(learningRate: Float, momentum: Float = 0, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    public mutating func update(_ parameters: inout [Tensor], gradients: [Tensor]) {
        precondition(parameters.count == gradients.count, "one gradient per parameter")
        if velocity.isEmpty { velocity = parameters.map { [Float](repeating: 0, count: $0.count) } }
        for index in parameters.indices {
            for element in 0..<parameters[index].count {
                let g = gradients[index].scalars[element] + weightDecay * parameters[index].scalars[element]
                velocity[index][element] = momentum * velocity[index][element] + g
                parameters[index].scalars[element] -= learningRate * velocity[index][element]
            }
        }
    }
}

/// Gradient clipping by global norm (PyTorch's `clip_grad_norm_`): when the gradients' joint
/// L2 norm passes `maxNorm`, all are scaled by maxNorm / (norm + 1e-6).
/// - Returns: the norm before clipping.
@discardableResult
public func clipGradients(_ gradients: inout [Tensor], maxNorm: Float) -> Float {
    let norm = gradients.reduce(Float(0)) { total, gradient in total + gradient.scalars.reduce(0) { $0 + $1 * $1 } }.squareRoot()
    if norm > maxNorm {
        let scale = maxNorm / (norm + 1e-6)
        for index in gradients.indices { gradients[index] = gradients[index] * scale }
    }
    return norm
}

/// Learning rate as a function of the step.
public enum LearningRateSchedule: Sendable, Equatable {
    case constant(Float)
    /// Multiplied by `factor` every `every` steps.
    case step(initial: Float, every: Int, factor: Float)
    /// Cosine from `initial` to `minimum` over `total` steps, after a linear warm-up of `warmup` steps.
    case cosine(initial: Float, minimum: Float, total: Int, warmup: Int)

    public func rate(at step: Int) -> Float {
        switch self {
        case .constant(let rate): return rate
        case .step(let initial, let every, let factor): return initial * pow(factor, Float(step / max(1, every)))
        case .cosine(let initial, let minimum, let total, let warmup):
            if step < warmup { return initial * Float(step + 1) / Float(warmup) }
            let progress = min(1, Float(step - warmup) / Float(max(1, total - warmup)))
            return minimum + 0.5 * (initial - minimum) * (1 + cos(Float.pi * progress))
        }
    }
}
