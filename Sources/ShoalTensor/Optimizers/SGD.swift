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
