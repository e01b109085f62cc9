import Foundation

/// Reverse-mode automatic differentiation: a `Tape` records each operation on `Variable`s with
/// how to pass gradients back to its inputs; `backward(from:)` walks it in reverse. Losses
/// written by hand from these operations get their gradients with no per-model backward code.
///
/// A tape belongs to one thread (or task) at a time. A tape made with `recording: false` keeps
/// nothing: values are freed as soon as no variable holds them (inference, Monte Carlo passes).
public final class Tape {
    struct Node {
        var shape: [Int]
        var gradient: Tensor?
        var inputs: [Int]
        /// Given this node's gradient, the gradient contribution to each input.
        var backward: ((Tensor) -> [Tensor])?
    }

    var nodes: [Node] = []
    /// Whether operations are recorded for `backward`.
    public let recording: Bool

    public init(recording: Bool = true) {
        self.recording = recording
    }

    /// A leaf: an input or a parameter.
    public func variable(_ value: Tensor) -> Variable {
        guard recording else { return Variable(tape: self, index: -1, value: value) }
        nodes.append(Node(shape: value.shape, gradient: nil, inputs: [], backward: nil))
        return Variable(tape: self, index: nodes.count - 1, value: value)
    }

    func record(_ value: Tensor, inputs: [Variable], backward: @escaping (Tensor) -> [Tensor]) -> Variable {
        guard recording else { return Variable(tape: self, index: -1, value: value) }
        nodes.append(Node(shape: value.shape, gradient: nil, inputs: inputs.map(\.index), backward: backward))
        return Variable(tape: self, index: nodes.count - 1, value: value)
    }

    /// Fills in the gradient of `output` (a scalar) with respect to every variable before it.
    public func backward(from output: Variable) {
        precondition(output.tape === self && recording, "backward needs the recording tape the output came from")
        precondition(output.value.count == 1, "backward starts from a scalar")
        for index in nodes.indices { nodes[index].gradient = nil }
        nodes[output.index].gradient = Tensor(shape: output.value.shape, repeating: 1)
        for index in stride(from: output.index, through: 0, by: -1) {
            guard let gradient = nodes[index].gradient, let backward = nodes[index].backward else { continue }
            let contributions = backward(gradient)
            // Inputs that were not recorded (−1: constants from a tape that keeps nothing) take no gradient.
            for (input, contribution) in zip(nodes[index].inputs, contributions) where input >= 0 {
                if let existing = nodes[input].gradient {
                    nodes[input].gradient = existing + contribution
                } else {
                    nodes[input].gradient = contribution
                }
            }
        }
    }
}

/// A value on a tape.
public struct Variable {
    let tape: Tape
    /// Its node on the tape; −1 on a tape that does not record.
    let index: Int
    public let value: Tensor

    /// The gradient after `Tape.backward`; nil when the output does not depend on it.
    public var gradient: Tensor? { index >= 0 ? tape.nodes[index].gradient : nil }
    public var shape: [Int] { value.shape }

    // MARK: operations

    public static func + (a: Variable, b: Variable) -> Variable {
        let (x, y) = (a.value, b.value)
        return a.tape.record(x + y, inputs: [a, b]) { g in [g, y.shape == g.shape ? g : Self.reduce(g, to: y.shape)] }
    }

    public static func - (a: Variable, b: Variable) -> Variable {
        let y = b.value
        return a.tape.record(a.value - b.value, inputs: [a, b]) { g in [g, Self.reduce(g, to: y.shape) * -1] }
    }

    public static func * (a: Variable, b: Variable) -> Variable {
        let (x, y) = (a.value, b.value)
        return a.tape.record(x * y, inputs: [a, b]) { g in [g * y, Self.reduce(g * x, to: y.shape)] }
    }

    public static func * (a: Variable, b: Float) -> Variable {
        a.tape.record(a.value * b, inputs: [a]) { g in [g * b] }
    }

    /// Sums a gradient down to a broadcast operand's shape (a row, or a scalar).
    static func reduce(_ gradient: Tensor, to shape: [Int]) -> Tensor {
        if gradient.shape == shape { return gradient }
        if shape.reduce(1, *) == 1 { return Tensor(shape: shape, scalars: [gradient.sum()]) }
        let width = shape.reduce(1, *)
        var result = Tensor(shape: shape)
        for (index, value) in gradient.scalars.enumerated() { result.scalars[index % width] += value }
        return result
    }

    /// The matrix product of rank-2 variables.
    public static func matmul(_ a: Variable, _ b: Variable) -> Variable {
        let (x, y) = (a.value, b.value)
        return a.tape.record(Tensor.matmul(x, y), inputs: [a, b]) { g in
            [Tensor.matmul(g, y, transposeB: true), Tensor.matmul(x, g, transposeA: true)]
        }
    }

    /// `x · Wᵀ + b` for `x` `[batch, in]`, `W` `[out, in]` (PyTorch's layout) and `b` `[out]`.
    public static func linear(_ x: Variable, weight: Variable, bias: Variable?) -> Variable {
        let (input, w) = (x.value, weight.value)
        var output = Tensor.matmul(input, w, transposeB: true)
        if let bias { output = output + bias.value }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return x.tape.record(output, inputs: inputs) { g in
            let grads = [Tensor.matmul(g, w), Tensor.matmul(g, input, transposeA: true)]
            return bias == nil ? grads : grads + [g.sumRows()]
        }
    }

    public func relu() -> Variable {
        let x = value
        return tape.record(x.map { max($0, 0) }, inputs: [self]) { g in [g.zip(x) { $1 > 0 ? $0 : 0 }] }
    }

    public func tanh() -> Variable {
        let y = value.map { Foundation.tanh($0) }
        return tape.record(y, inputs: [self]) { g in [g.zip(y) { $0 * (1 - $1 * $1) }] }
    }

    public func sigmoid() -> Variable {
        let y = value.map { 1 / (1 + exp(-$0)) }
        return tape.record(y, inputs: [self]) { g in [g.zip(y) { $0 * $1 * (1 - $1) }] }
    }

    /// The sum of all elements (a scalar).
    public func sum() -> Variable {
        let shape = value.shape
        return tape.record(Tensor(value.sum()), inputs: [self]) { g in [Tensor(shape: shape, repeating: g.scalars[0])] }
    }

    /// The mean of all elements (a scalar).
    public func mean() -> Variable {
        let shape = value.shape
        let count = Float(value.count)
        return tape.record(Tensor(value.mean()), inputs: [self]) { g in [Tensor(shape: shape, repeating: g.scalars[0] / count)] }
    }

    /// Mean squared error against a target (a scalar).
    public func meanSquaredError(_ target: Tensor) -> Variable {
        let difference = value - target
        let count = Float(value.count)
        let loss = difference.scalars.reduce(0) { $0 + $1 * $1 } / count
        return tape.record(Tensor(loss), inputs: [self]) { g in [difference * (2 * g.scalars[0] / count)] }
    }

    /// Mean cross-entropy of `[batch, classes]` logits against class indices (a scalar),
    /// through a stable log-softmax.
    public func crossEntropy(labels: [Int]) -> Variable {
        let x = value
        precondition(x.rank == 2 && x.shape[0] == labels.count, "crossEntropy: logits \(x.shape) for \(labels.count) labels")
        let classes = x.shape[1]
        let probabilities = x.softmax()
        var loss: Float = 0
        for (row, label) in labels.enumerated() {
            precondition((0..<classes).contains(label), "label \(label) is not a class of \(classes)")
            loss -= log(max(probabilities.scalars[row * classes + label], .leastNormalMagnitude))
        }
        let batch = Float(labels.count)
        return tape.record(Tensor(loss / batch), inputs: [self]) { g in
            var gradient = probabilities
            for (row, label) in labels.enumerated() { gradient.scalars[row * classes + label] -= 1 }
            return [gradient * (g.scalars[0] / batch)]
        }
    }
}
