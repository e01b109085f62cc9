import CShoalKernels
import Foundation

extension Tensor {
    /// A gradient summed down to the shape of an operand that was broadcast over it.
    func reduced(to target: [Int]) -> Tensor {
        switch Broadcast(target, over: shape) {
        case .same: return reshaped(target)
        case .scalar: return Tensor(shape: target, scalars: [sum()])
        case .row(let width):
            return Tensor(shape: target) { out in withPointer { shoal_column_sums($0, count / width, width, out, 0) } }
        case .column(let rows, let width):
            return Tensor(shape: target) { out in withPointer { shoal_row_sums($0, rows, width, out, 0) } }
        }
    }

    /// A broadcast operand written out to the full shape.
    func expanded(to target: [Int]) -> Tensor {
        Tensor(shape: target, repeating: 0) + self
    }
}

extension Variable {
    /// Whether `a` is the operand broadcast over `b` (rather than the other way round).
    private static func broadcastsOver(_ a: Variable, _ b: Variable) -> Bool {
        a.shape != b.shape && a.value.count < b.value.count
    }

    public static func + (a: Variable, b: Variable) -> Variable {
        if broadcastsOver(a, b) { return b + a }
        let (ai, bi, bShape) = (a.index, b.index, b.shape)
        return a.tape.record(a.value + b.value, needsGradient: a.needsGradient || b.needsGradient) { g, tape in
            tape.accumulate(ai, g)
            if bi >= 0 { tape.accumulate(bi, g.reduced(to: bShape)) }
        }
    }

    public static func - (a: Variable, b: Variable) -> Variable {
        if broadcastsOver(a, b) { return -(b - a) }
        let (ai, bi, bShape) = (a.index, b.index, b.shape)
        return a.tape.record(a.value - b.value, needsGradient: a.needsGradient || b.needsGradient) { g, tape in
            tape.accumulate(ai, g)
            if bi >= 0 { tape.accumulate(bi, -g.reduced(to: bShape)) }
        }
    }

    public static func * (a: Variable, b: Variable) -> Variable {
        if broadcastsOver(a, b) { return b * a }
        let (x, y) = (a.value, b.value)
        let (ai, bi) = (a.index, b.index)
        return a.tape.record(x * y, needsGradient: a.needsGradient || b.needsGradient) { g, tape in
            if ai >= 0 { tape.accumulate(ai, g * y) }
            if bi >= 0 { tape.accumulate(bi, (g * x).reduced(to: y.shape)) }
        }
    }

    public static func / (a: Variable, b: Variable) -> Variable {
        if broadcastsOver(a, b) {
            let full = a.tape.constant(Tensor(shape: b.shape, repeating: 0))
            return (full + a) / b
        }
        let (x, y) = (a.value, b.value)
        let out = x / y
        let (ai, bi) = (a.index, b.index)
        return a.tape.record(out, needsGradient: a.needsGradient || b.needsGradient) { g, tape in
            let quotient = g / y
            if ai >= 0 { tape.accumulate(ai, quotient) }
            if bi >= 0 { tape.accumulate(bi, (-(quotient * out)).reduced(to: y.shape)) }
        }
    }

    public static func * (a: Variable, b: Float) -> Variable {
        let ai = a.index
        return a.tape.record(a.value * b, needsGradient: a.needsGradient) { g, tape in tape.accumulate(ai, g * b) }
    }

    public static func * (a: Float, b: Variable) -> Variable { b * a }

    public static func + (a: Variable, b: Float) -> Variable {
        let ai = a.index
        return a.tape.record(a.value + b, needsGradient: a.needsGradient) { g, tape in tape.accumulate(ai, g) }
    }

    public static func - (a: Variable, b: Float) -> Variable { a + -b }
    public static func - (a: Float, b: Variable) -> Variable { -b + a }

    public static prefix func - (a: Variable) -> Variable { a * -1 }

    /// An elementwise function whose gradient is `g · derivative`, the derivative computed from
    /// the input and output by `backward(g, x, y) → dx`.
    private func unary(
        _ y: Tensor, _ backward: @escaping (_ g: Tensor, _ x: Tensor, _ y: Tensor) -> Tensor
    ) -> Variable {
        let (x, index) = (value, self.index)
        return tape.record(y, needsGradient: needsGradient) { g, tape in tape.accumulate(index, backward(g, x, y)) }
    }

    /// Applies `kernel(gradient, saved, out, count)`, a backward kernel of the C library.
    private static func backwardKernel(
        _ g: Tensor, _ saved: Tensor,
        _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
    ) -> Tensor {
        Tensor(shape: g.shape) { out in g.withPointer { gp in saved.withPointer { kernel(gp, $0, out, g.count) } } }
    }

    public func relu() -> Variable { unary(value.relu()) { g, x, _ in Self.backwardKernel(g, x, shoal_relu_backward) } }
    public func tanh() -> Variable { unary(value.tanh()) { g, _, y in Self.backwardKernel(g, y, shoal_tanh_backward) } }
    public func sigmoid() -> Variable {
        unary(value.sigmoid()) { g, _, y in Self.backwardKernel(g, y, shoal_sigmoid_backward) }
    }
    public func exp() -> Variable { unary(value.exp()) { g, _, y in g * y } }
    public func log() -> Variable { unary(value.log()) { g, x, _ in g / x } }
    public func squared() -> Variable { unary(value * value) { g, x, _ in g * x * 2 } }
    public func squareRoot() -> Variable {
        unary(value.map { $0.squareRoot() }) { g, _, y in g.zip(y) { $0 * 0.5 / $1 } }
    }
    /// |x| (gradient 0 at 0).
    public func magnitude() -> Variable {
        unary(value.map { Swift.abs($0) }) { g, x, _ in g.zip(x) { $1 > 0 ? $0 : $1 < 0 ? -$0 : 0 } }
    }
    /// log(1 + exp(x)), computed stably.
    public func softplus() -> Variable {
        let y = value.map { $0 > 20 ? $0 : Foundation.log1p(Foundation.exp($0)) }
        return unary(y) { g, x, _ in g * x.sigmoid() }
    }

    /// Values clamped into `range`; the gradient passes only where the value was inside it.
    public func clamped(to range: ClosedRange<Float>) -> Variable {
        unary(value.clamped(to: range)) { g, x, _ in
            Tensor(shape: g.shape) { out in
                g.withPointer { gp in
                    x.withPointer { shoal_clamp_backward(gp, $0, range.lowerBound, range.upperBound, out, g.count) }
                }
            }
        }
    }

    /// The elementwise smaller of two same-shaped values (the gradient goes to the one chosen;
    /// to the first on ties).
    public static func minimum(_ a: Variable, _ b: Variable) -> Variable { choose(a, b) { $0 <= $1 } }
    /// The elementwise larger of two same-shaped values.
    public static func maximum(_ a: Variable, _ b: Variable) -> Variable { choose(a, b) { $0 >= $1 } }

    private static func choose(_ a: Variable, _ b: Variable, _ first: @escaping (Float, Float) -> Bool) -> Variable {
        precondition(a.shape == b.shape, "minimum/maximum take same-shaped values, not \(a.shape) and \(b.shape)")
        let (x, y) = (a.value, b.value)
        let (ai, bi) = (a.index, b.index)
        let out = x.zip(y) { first($0, $1) ? $0 : $1 }
        return a.tape.record(out, needsGradient: a.needsGradient || b.needsGradient) { g, tape in
            let pick = x.zip(y) { first($0, $1) ? 1 : 0 }
            if ai >= 0 { tape.accumulate(ai, g * pick) }
            if bi >= 0 { tape.accumulate(bi, g * (1 - pick)) }
        }
    }
}

private func - (a: Float, b: Tensor) -> Tensor { b.affine(scale: -1, shift: a) }
