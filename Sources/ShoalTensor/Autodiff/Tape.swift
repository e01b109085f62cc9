import CShoalKernels

/// Reverse-mode automatic differentiation: a `Tape` records each operation on `Variable`s with
/// how to pass its gradient back to its inputs; `backward(from:)` walks it in reverse. Losses
/// written by hand from these operations get their gradients with no per-model backward code.
///
/// Only what needs a gradient is recorded: leaves made with `variable(_:)` (parameters, and
/// inputs whose gradient is wanted) and everything computed from them. Values made with
/// `constant(_:)`, and every value on a tape made with `recording: false`, keep nothing
/// (inference, Monte Carlo passes, targets). Gradients are accumulated in place; once
/// `backward` has passed a node, its intermediate gradient and saved values are freed, so the
/// graph runs backward once (as PyTorch's without `retain_graph`).
///
/// A tape belongs to one thread (or task) at a time.
public final class Tape {
    struct Node {
        var shape: [Int]
        var gradient: Tensor?
        /// Given this node's gradient, adds each input's share to it with `accumulate`.
        var backward: ((Tensor, Tape) -> Void)?
        var isLeaf: Bool
    }

    var nodes: [Node] = []
    /// Whether operations are recorded for `backward`.
    public let recording: Bool
    private var backwardRan = false

    public init(recording: Bool = true) {
        self.recording = recording
        _ = Memory.configured
    }

    /// A leaf whose gradient is wanted: a parameter, or an input to differentiate by.
    public func variable(_ value: Tensor) -> Variable {
        guard recording else { return Variable(tape: self, index: -1, value: value) }
        nodes.append(Node(shape: value.shape, gradient: nil, backward: nil, isLeaf: true))
        return Variable(tape: self, index: nodes.count - 1, value: value)
    }

    /// A value that takes no gradient (an input, a target, a frozen parameter).
    public func constant(_ value: Tensor) -> Variable { Variable(tape: self, index: -1, value: value) }

    /// Records an operation's result. `needsGradient` says whether any input takes a gradient;
    /// when none does (or the tape keeps nothing), nothing is recorded and `backward` is dropped.
    func record(_ value: Tensor, needsGradient: Bool, backward: @escaping (Tensor, Tape) -> Void) -> Variable {
        guard recording, needsGradient else { return Variable(tape: self, index: -1, value: value) }
        nodes.append(Node(shape: value.shape, gradient: nil, backward: backward, isLeaf: false))
        return Variable(tape: self, index: nodes.count - 1, value: value)
    }

    /// Adds `contribution` to the gradient of node `index`; −1 (no gradient wanted) is skipped.
    func accumulate(_ index: Int, _ contribution: Tensor) {
        guard index >= 0 else { return }
        precondition(
            contribution.count == nodes[index].shape.reduce(1, *),
            "a gradient of shape \(contribution.shape) for a value of shape \(nodes[index].shape)")
        if nodes[index].gradient == nil {
            nodes[index].gradient = contribution.reshaped(nodes[index].shape)
            return
        }
        contribution.withPointer { add in
            nodes[index].gradient!.withMutablePointer { shoal_add($0, add, $0, contribution.count) }
        }
    }

    /// Lets `body` write the gradient of node `index` in place: with `beta` 0 it must write
    /// every value (the buffer is new and uninitialised), with `beta` 1 it adds to them (the
    /// `beta` of a BLAS call). Skipped for −1.
    func accumulate(_ index: Int, _ body: (_ gradient: UnsafeMutablePointer<Float>, _ beta: Float) -> Void) {
        guard index >= 0 else { return }
        if nodes[index].gradient == nil {
            nodes[index].gradient = Tensor(shape: nodes[index].shape) { body($0, 0) }
        } else {
            nodes[index].gradient!.withMutablePointer { body($0, 1) }
        }
    }

    /// Fills in the gradient of `output` (a scalar) with respect to every leaf it depends on.
    public func backward(from output: Variable) {
        precondition(output.tape === self && recording, "backward needs the recording tape the output came from")
        precondition(output.value.count == 1, "backward starts from a scalar")
        precondition(!backwardRan, "backward already ran on this tape: record the graph again")
        backwardRan = true
        guard output.index >= 0 else { return }
        nodes[output.index].gradient = Tensor(shape: output.value.shape, repeating: 1)
        for index in stride(from: output.index, through: 0, by: -1) {
            guard let backward = nodes[index].backward else { continue }
            nodes[index].backward = nil
            guard let gradient = nodes[index].gradient else { continue }
            if !nodes[index].isLeaf { nodes[index].gradient = nil }
            backward(gradient, self)
        }
    }
}

/// A value on a tape.
public struct Variable {
    public let tape: Tape
    /// Its node on the tape; −1 when it takes no gradient.
    let index: Int
    public let value: Tensor

    /// The gradient of a leaf after `Tape.backward`; nil when the output does not depend on it.
    public var gradient: Tensor? { index >= 0 ? tape.nodes[index].gradient : nil }
    public var shape: [Int] { value.shape }
    /// Whether gradients flow back to this value.
    public var needsGradient: Bool { index >= 0 }

    /// The same value, cut off from the graph (PyTorch's `detach()`).
    public func detached() -> Variable { tape.constant(value) }
}
