import CShoalKernels
import Foundation

/// Adam (and AdamW with `weightDecay`): per-parameter first and second moment estimates with
/// bias correction, as PyTorch's `torch.optim.Adam`/`AdamW`.
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    /// Decoupled weight decay (AdamW); 0 for plain Adam.
    public var weightDecay: Float = 0
    /// First moment estimates, one per parameter (empty before the first update).
    public private(set) var moments: [Tensor] = []
    /// Second moment estimates, one per parameter (empty before the first update).
    public private(set) var squares: [Tensor] = []
    public private(set) var step = 0

    public init(learningRate: Float = 1e-3, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }

    /// Takes up the state of an optimiser saved earlier (a checkpoint), so that the next update
    /// continues exactly where it left off.
    /// - Throws: `SafeTensorsError` when the moments do not pair up or the step is negative.
    public mutating func restore(step: Int, moments: [Tensor], squares: [Tensor]) throws {
        guard step >= 0, moments.count == squares.count,
            zip(moments, squares).allSatisfy({ $0.shape == $1.shape })
        else {
            throw SafeTensorsError("Adam state: \(moments.count) first and \(squares.count) second moments at step \(step)")
        }
        self.step = step
        self.moments = moments
        self.squares = squares
    }

    /// Updates `parameters` in place from gradients laid end to end in one buffer, parameter
    /// after parameter in the order given (as an all-reduce leaves them).
    public mutating func update(_ parameters: inout [Tensor], flatGradients: UnsafeBufferPointer<Float>) {
        let total = parameters.reduce(0) { $0 + $1.count }
        precondition(flatGradients.count == total, "\(flatGradients.count) gradients for \(total) parameters")
        let corrections = beginStep(parameters)
        guard let base = flatGradients.baseAddress else { return }
        var offset = 0
        for index in parameters.indices {
            let count = parameters[index].count
            update(&parameters[index], index: index, gradient: base + offset, corrections: corrections)
            offset += count
        }
    }

    /// Updates `parameters` in place from their gradients (same order every call).
    public mutating func update(_ parameters: inout [Tensor], gradients: [Tensor]) {
        precondition(parameters.count == gradients.count, "one gradient per parameter")
        let corrections = beginStep(parameters)
        for index in parameters.indices {
            precondition(parameters[index].shape == gradients[index].shape, "gradient \(index) has the wrong shape")
            gradients[index].withPointer { update(&parameters[index], index: index, gradient: $0, corrections: corrections) }
        }
    }

    /// Sets the moments up on the first step, counts the step, and returns its bias corrections.
    private mutating func beginStep(_ parameters: [Tensor]) -> (Float, Float) {
        if moments.isEmpty {
            moments = parameters.map { Tensor(shape: $0.shape) }
            squares = moments
        }
        precondition(moments.count == parameters.count, "Adam was set up for \(moments.count) parameters")
        step += 1
        return (1 - pow(beta1, Float(step)), 1 - pow(beta2, Float(step)))
    }

    private mutating func update(
        _ parameter: inout Tensor, index: Int, gradient: UnsafePointer<Float>, corrections: (Float, Float)
    ) {
        let count = parameter.count
        let (rate, beta1, beta2, epsilon, decay) = (learningRate, self.beta1, self.beta2, self.epsilon, weightDecay)
        parameter.withMutablePointer { p in
            moments[index].withMutablePointer { m in
                squares[index].withMutablePointer { v in
                    shoal_adam(p, gradient, m, v, count, rate, beta1, beta2, epsilon, corrections.0, corrections.1, decay)
                }
            }
        }
    }
}
