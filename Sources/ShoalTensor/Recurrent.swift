import Foundation

extension Variable {
    /// The same values under another shape.
    public func reshaped(_ shape: [Int]) -> Variable {
        let original = self.shape
        return tape.record(value.reshaped(shape), inputs: [self]) { g in [g.reshaped(original)] }
    }

    /// Columns `range` of the last dimension.
    public func sliceLast(_ range: Range<Int>) -> Variable {
        let x = value
        let width = x.shape[x.rank - 1]
        precondition(range.lowerBound >= 0 && range.upperBound <= width, "sliceLast: \(range) outside 0..<\(width)")
        let rows = x.count / width
        var shape = x.shape
        shape[shape.count - 1] = range.count
        var result = Tensor(shape: shape)
        for row in 0..<rows {
            for (j, column) in range.enumerated() { result.scalars[row * range.count + j] = x.scalars[row * width + column] }
        }
        return tape.record(result, inputs: [self]) { g in
            var gradient = Tensor(shape: x.shape)
            for row in 0..<rows {
                for (j, column) in range.enumerated() {
                    gradient.scalars[row * width + column] = g.scalars[row * range.count + j]
                }
            }
            return [gradient]
        }
    }

    /// Step `t` of a `[batch, time, features]` sequence: `[batch, features]`.
    public func timeStep(_ t: Int) -> Variable {
        let x = value
        precondition(x.rank == 3 && (0..<x.shape[1]).contains(t), "timeStep: \(t) of \(x.shape)")
        let (batch, steps, features) = (x.shape[0], x.shape[1], x.shape[2])
        var result = Tensor(shape: [batch, features])
        for b in 0..<batch {
            for f in 0..<features { result.scalars[b * features + f] = x.scalars[(b * steps + t) * features + f] }
        }
        return tape.record(result, inputs: [self]) { g in
            var gradient = Tensor(shape: x.shape)
            for b in 0..<batch {
                for f in 0..<features { gradient.scalars[(b * steps + t) * features + f] = g.scalars[b * features + f] }
            }
            return [gradient]
        }
    }

    /// `[batch, features]` steps stacked into `[batch, time, features]`.
    public static func stackTime(_ steps: [Variable]) -> Variable {
        precondition(!steps.isEmpty, "stackTime needs at least one step")
        let shape = steps[0].shape
        return concatenate(steps.map { $0.reshaped([shape[0], 1, shape[1]]) }, axis: 1)
    }
}

/// PyTorch's `nn.LSTM` (batch-first): stacked layers, optionally bidirectional, dropout between
/// layers in training. Gates in PyTorch's order (input, forget, cell, output); parameters named
/// and shaped as its `state_dict()`: `weight_ih_l{k}[_reverse]` `[4H, in]`,
/// `weight_hh_l{k}[_reverse]` `[4H, H]`, `bias_ih_l{k}[_reverse]`, `bias_hh_l{k}[_reverse]` `[4H]`.
public struct LSTM: Sendable {
    public var inputSize: Int
    public var hiddenSize: Int
    public var layers: Int
    public var bidirectional: Bool
    public var dropout: Float
    /// By `state_dict()` name.
    public var parameters: [String: Tensor]

    /// Initialised as PyTorch does: uniform in ±1/√hidden, from `seed`.
    public init(inputSize: Int, hiddenSize: Int, layers: Int = 1, bidirectional: Bool = false, dropout: Float = 0, seed: UInt64) {
        precondition(inputSize > 0 && hiddenSize > 0 && layers > 0, "LSTM sizes must be positive")
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        let bound = 1 / Float(hiddenSize).squareRoot()
        var parameters: [String: Tensor] = [:]
        var seed = seed
        for name in Self.parameterNames(layers: layers, bidirectional: bidirectional) {
            let layer = Int(name.split(separator: "_")[2].dropFirst()) ?? 0
            let input = layer == 0 ? inputSize : hiddenSize * (bidirectional ? 2 : 1)
            let shape =
                name.hasPrefix("weight_ih")
                ? [4 * hiddenSize, input] : name.hasPrefix("weight_hh") ? [4 * hiddenSize, hiddenSize] : [4 * hiddenSize]
            parameters[name] = .randomUniform(shape: shape, bound: bound, seed: seed)
            seed &+= 1
        }
        self.parameters = parameters
    }

    public static func parameterNames(layers: Int, bidirectional: Bool) -> [String] {
        var names: [String] = []
        for layer in 0..<layers {
            for suffix in bidirectional ? ["", "_reverse"] : [""] {
                for kind in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] { names.append("\(kind)_l\(layer)\(suffix)") }
            }
        }
        return names
    }

    /// Runs `input` `[batch, time, inputSize]` with zero initial states; returns
    /// `[batch, time, hidden × directions]`. `variables` holds this LSTM's parameters on the tape
    /// (from `variables(on:)`), so their gradients can be read after `backward`.
    public func callAsFunction(_ input: Variable, variables: [String: Variable], training: Bool, seed: UInt64 = 0) -> Variable {
        precondition(
            input.shape.count == 3 && input.shape[2] == inputSize,
            "LSTM input must be [batch, time, \(inputSize)], not \(input.shape)")
        let (batch, steps) = (input.shape[0], input.shape[1])
        let tape = input.tape
        let zeros = Tensor(shape: [batch, hiddenSize])
        var sequence = input
        for layer in 0..<layers {
            if layer > 0 && training && dropout > 0 {
                sequence = sequence.dropout(dropout, training: true, seed: seed &+ UInt64(layer))
            }
            var directions: [[Variable]] = []
            for suffix in bidirectional ? ["", "_reverse"] : [""] {
                func parameter(_ kind: String) -> Variable {
                    guard let variable = variables["\(kind)_l\(layer)\(suffix)"] else {
                        preconditionFailure("LSTM variables lack \(kind)_l\(layer)\(suffix): pass variables(on:)")
                    }
                    return variable
                }
                let (wih, whh, bih, bhh) = (
                    parameter("weight_ih"), parameter("weight_hh"), parameter("bias_ih"), parameter("bias_hh")
                )
                var h = tape.variable(zeros)
                var c = tape.variable(zeros)
                var outputs = [Variable?](repeating: nil, count: steps)
                let order = suffix.isEmpty ? Array(0..<steps) : Array((0..<steps).reversed())
                // The input's share of every step's gates in one large product, before the recurrence.
                let width = sequence.shape[2]
                let projected = Variable.linear(sequence.reshaped([batch * steps, width]), weight: wih, bias: bih)
                    .reshaped([batch, steps, 4 * hiddenSize])
                for t in order {
                    let state = Variable.lstmCell(input: projected.timeStep(t), hidden: h, cell: c, weight: whh, bias: bhh)
                    h = state.sliceLast(0..<hiddenSize)
                    c = state.sliceLast(hiddenSize..<2 * hiddenSize)
                    outputs[t] = h
                }
                directions.append(outputs.compactMap { $0 })
            }
            let stepsOut = (0..<steps).map { t in
                directions.count == 1 ? directions[0][t] : Variable.concatenate([directions[0][t], directions[1][t]], axis: 1)
            }
            sequence = Variable.stackTime(stepsOut)
        }
        return sequence
    }

    /// This LSTM's parameters as variables on `tape`.
    public func variables(on tape: Tape) -> [String: Variable] { parameters.mapValues { tape.variable($0) } }
}

extension Variable {
    /// One LSTM step as a single taped operation: gates = `input` (the input's projection,
    /// `[batch, 4H]`) + `hidden` · `weight`ᵀ + `bias`, in PyTorch's order (i, f, g, o); returns the
    /// new hidden and cell states side by side, `[batch, 2H]`, with a hand-written backward pass.
    public static func lstmCell(input: Variable, hidden: Variable, cell: Variable, weight: Variable, bias: Variable) -> Variable {
        let (projection, h, c, w) = (input.value, hidden.value, cell.value, weight.value)
        let batch = h.shape[0]
        let size = h.shape[1]
        precondition(projection.shape == [batch, 4 * size] && w.shape == [4 * size, size], "lstmCell: shapes do not fit")
        var gates = Tensor.matmul(h, w, transposeB: true)
        let b = bias.value.scalars
        var state = Tensor(shape: [batch, 2 * size])
        // i, f, g, o and tanh(c') per element, kept for the backward pass.
        var saved = [Float](repeating: 0, count: batch * size * 5)
        gates.scalars.withUnsafeMutableBufferPointer { z in
            projection.scalars.withUnsafeBufferPointer { x in
                c.scalars.withUnsafeBufferPointer { cPrevious in
                    state.scalars.withUnsafeMutableBufferPointer { out in
                        saved.withUnsafeMutableBufferPointer { keep in
                            for row in 0..<batch {
                                let g = row * 4 * size
                                for j in 0..<size {
                                    let i = 1 / (1 + exp(-(z[g + j] + x[g + j] + b[j])))
                                    let f = 1 / (1 + exp(-(z[g + size + j] + x[g + size + j] + b[size + j])))
                                    let candidate = Foundation.tanh(z[g + 2 * size + j] + x[g + 2 * size + j] + b[2 * size + j])
                                    let o = 1 / (1 + exp(-(z[g + 3 * size + j] + x[g + 3 * size + j] + b[3 * size + j])))
                                    let cNew = f * cPrevious[row * size + j] + i * candidate
                                    let tanhC = Foundation.tanh(cNew)
                                    out[row * 2 * size + j] = o * tanhC
                                    out[row * 2 * size + size + j] = cNew
                                    let k = (row * size + j) * 5
                                    keep[k] = i
                                    keep[k + 1] = f
                                    keep[k + 2] = candidate
                                    keep[k + 3] = o
                                    keep[k + 4] = tanhC
                                }
                            }
                        }
                    }
                }
            }
        }
        return input.tape.record(state, inputs: [input, hidden, cell, weight, bias]) { upstream in
            var dGates = Tensor(shape: [batch, 4 * size])
            var dCell = Tensor(shape: [batch, size])
            for row in 0..<batch {
                for j in 0..<size {
                    let k = (row * size + j) * 5
                    let (i, f, candidate, o, tanhC) = (saved[k], saved[k + 1], saved[k + 2], saved[k + 3], saved[k + 4])
                    let dh = upstream.scalars[row * 2 * size + j]
                    let dc = upstream.scalars[row * 2 * size + size + j] + dh * o * (1 - tanhC * tanhC)
                    let g = row * 4 * size
                    dGates.scalars[g + j] = dc * candidate * i * (1 - i)
                    dGates.scalars[g + size + j] = dc * c.scalars[row * size + j] * f * (1 - f)
                    dGates.scalars[g + 2 * size + j] = dc * i * (1 - candidate * candidate)
                    dGates.scalars[g + 3 * size + j] = dh * tanhC * o * (1 - o)
                    dCell.scalars[row * size + j] = dc * f
                }
            }
            return [dGates, Tensor.matmul(dGates, w), dCell, Tensor.matmul(dGates, h, transposeA: true), dGates.sumRows()]
        }
    }
}
