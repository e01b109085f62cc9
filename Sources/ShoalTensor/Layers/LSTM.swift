import CShoalKernels

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
        return Self.forward(
            input, variables: variables, layers: layers, bidirectional: bidirectional, dropout: dropout, training: training,
            seed: seed)
    }

    /// An LSTM's forward pass from its parameters alone, found in `variables` under `prefix` +
    /// their `state_dict()` names (a model's variables, say, with the prefix `"lstm."`).
    public static func forward(
        _ input: Variable, variables: [String: Variable], prefix: String = "", layers: Int, bidirectional: Bool,
        dropout: Float, training: Bool, seed: UInt64
    ) -> Variable {
        precondition(input.shape.count == 3, "LSTM input must be [batch, time, features], not \(input.shape)")
        // Time-major between layers: each layer reads and writes [time, batch, …].
        var sequence = input.permuted([1, 0, 2])
        for layer in 0..<layers {
            if layer > 0 && training && dropout > 0 {
                sequence = sequence.dropout(dropout, training: true, seed: seed &+ UInt64(layer))
            }
            let directions = (bidirectional ? ["", "_reverse"] : [""]).map { suffix in
                func parameter(_ kind: String) -> Variable {
                    guard let variable = variables["\(prefix)\(kind)_l\(layer)\(suffix)"] else {
                        preconditionFailure("LSTM variables lack \(prefix)\(kind)_l\(layer)\(suffix): pass variables(on:)")
                    }
                    return variable
                }
                return Variable.LSTMWeights(
                    input: parameter("weight_ih"), hidden: parameter("weight_hh"), inputBias: parameter("bias_ih"),
                    hiddenBias: parameter("bias_hh"))
            }
            sequence = Variable.lstmLayer(timeMajor: sequence, directions: directions)
        }
        return sequence.permuted([1, 0, 2])
    }

    /// This LSTM's parameters as variables on `tape`.
    public func variables(on tape: Tape) -> [String: Variable] { parameters.mapValues { tape.variable($0) } }
}

extension Variable {
    /// One direction's parameters of an LSTM layer.
    public struct LSTMWeights {
        /// `[4H, in]`.
        public var input: Variable
        /// `[4H, H]`.
        public var hidden: Variable
        public var inputBias: Variable
        public var hiddenBias: Variable

        public init(input: Variable, hidden: Variable, inputBias: Variable, hiddenBias: Variable) {
            self.input = input
            self.hidden = hidden
            self.inputBias = inputBias
            self.hiddenBias = hiddenBias
        }
    }

    /// One LSTM layer over a whole `[batch, time, in]` sequence as a single taped operation, in
    /// one direction (forward in time) or two (the second backward in time, outputs side by side
    /// `[batch, time, 2H]`), from zero states.
    ///
    /// Inside, everything is time-major (`[time, batch, …]`), so each step's rows are one
    /// contiguous block. Forward: the input's share of every step's gates is one product for the
    /// whole sequence; then each step adds `h · W_hhᵀ` into its gates in place and applies the
    /// gate functions. Backward runs through time once per direction, each step's only product
    /// being `dgates · W_hh`; the weight gradients are then whole-sequence products (the
    /// previous hidden states are the saved states shifted by one step). The directions run on
    /// separate threads when `Compute.threads` allows.
    public static func lstmLayer(_ input: Variable, directions: [LSTMWeights]) -> Variable {
        lstmLayer(timeMajor: input.permuted([1, 0, 2]), directions: directions).permuted([1, 0, 2])
    }

    /// `lstmLayer(_:directions:)` on a time-major sequence: `[time, batch, in]` →
    /// `[time, batch, hidden × directions]` (stacked layers stay time-major in between).
    public static func lstmLayer(timeMajor input: Variable, directions: [LSTMWeights]) -> Variable {
        let x = input.value
        precondition(x.rank == 3 && !directions.isEmpty && directions.count <= 2, "lstmLayer: input \(x.shape)")
        let (steps, batch, width) = (x.shape[0], x.shape[1], x.shape[2])
        let hidden = directions[0].hidden.shape[1]
        let gateWidth = 4 * hidden
        let count = directions.count
        for weights in directions {
            precondition(
                weights.input.shape == [gateWidth, width] && weights.hidden.shape == [gateWidth, hidden]
                    && weights.inputBias.shape == [gateWidth] && weights.hiddenBias.shape == [gateWidth],
                "lstmLayer: weights do not fit an input of width \(width) and hidden size \(hidden)")
        }
        let rows = batch * steps
        let (gatesStride, stateStride) = (count * gateWidth, count * hidden)
        let (gatesBlock, stateBlock) = (batch * gatesStride, batch * stateStride)
        let inputWeights = directions.map(\.input.value)
        // Both directions' input weights stacked, [D × 4H, in]: one product projects the input for both.
        let stackedWeights = count == 1 ? inputWeights[0] : Tensor.concatenate(inputWeights, axis: 0)
        let hiddenWeights = directions.map(\.hidden.value)
        let timeMajor = x
        // Both biases of each direction, added by the step kernel.
        let biases = directions.map { $0.inputBias.value + $0.hiddenBias.value }

        // The input's share of every gate of every step: [time, batch, D × 4H].
        var gates = Tensor(shape: [steps, batch, gatesStride]) { out in
            timeMajor.withPointer { xp in
                stackedWeights.withPointer { wp in
                    GEMM.multiply(
                        xp, width, wp, width, transposeB: true, into: out, gatesStride, m: rows, n: gatesStride, k: width)
                }
            }
        }
        var cells = Tensor(shape: [steps, batch, stateStride]) { _ in }
        var squashed = Tensor(shape: [steps, batch, stateStride]) { _ in }
        var states = Tensor(shape: [steps, batch, stateStride]) { _ in }
        gates.withMutablePointer { gp in
            cells.withMutablePointer { cp in
                squashed.withMutablePointer { tp in
                    states.withMutablePointer { hp in
                        Compute.parallelFor(count, cost: rows * gateWidth * hidden * 2) { d in
                            hiddenWeights[d].withPointer { whh in
                                biases[d].withPointer { bias in
                                    for s in 0..<steps {
                                        let t = d == 0 ? s : steps - 1 - s
                                        let previous = (d == 0 ? t - 1 : t + 1) * stateBlock + d * hidden
                                        let gatesAt = gp + t * gatesBlock + d * gateWidth
                                        if s > 0 {
                                            GEMM.multiply(
                                                hp + previous, stateStride, whh, hidden, transposeB: true, into: gatesAt,
                                                gatesStride,
                                                m: batch, n: gateWidth, k: hidden, beta: 1)
                                        }
                                        let state = t * stateBlock + d * hidden
                                        shoal_lstm_step(
                                            batch, hidden, gatesAt, gatesStride, bias, s > 0 ? cp + previous : nil, stateStride,
                                            cp + state, stateStride, tp + state, stateStride, hp + state, stateStride)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        let inputIndex = input.index
        let weightIndices = directions.map { ($0.input.index, $0.hidden.index, $0.inputBias.index, $0.hiddenBias.index) }
        let needs =
            input.needsGradient || directions.contains { $0.input.needsGradient || $0.hidden.needsGradient }
            || directions.contains { $0.inputBias.needsGradient || $0.hiddenBias.needsGradient }
        let (activated, cellStates, tanhCells, hiddenStates) = (gates, cells, squashed, states)
        return input.tape.record(states, needsGradient: needs) { g, tape in
            let upstream = g
            // The gates' pre-activation gradients of every step, written by the pass through time.
            var dGates = Tensor(shape: [steps, batch, gatesStride]) { _ in }
            activated.withPointer { gp in
                cellStates.withPointer { cp in
                    tanhCells.withPointer { tp in
                        upstream.withPointer { dy in
                            dGates.withMutablePointer { dg in
                                Compute.parallelFor(count, cost: rows * gateWidth * hidden * 2) { d in
                                    let dh = UnsafeMutablePointer<Float>.allocate(capacity: batch * hidden)
                                    let dc = UnsafeMutablePointer<Float>.allocate(capacity: batch * hidden)
                                    defer {
                                        dh.deallocate()
                                        dc.deallocate()
                                    }
                                    dc.initialize(repeating: 0, count: batch * hidden)
                                    hiddenWeights[d].withPointer { whh in
                                        for s in stride(from: steps - 1, through: 0, by: -1) {
                                            let t = d == 0 ? s : steps - 1 - s
                                            let previous = (d == 0 ? t - 1 : t + 1) * stateBlock + d * hidden
                                            let later = d == 0 ? t + 1 : t - 1
                                            let state = t * stateBlock + d * hidden
                                            for b in 0..<batch {
                                                (dh + b * hidden).update(from: dy + state + b * stateStride, count: hidden)
                                            }
                                            if s < steps - 1 {
                                                GEMM.multiply(
                                                    dg + later * gatesBlock + d * gateWidth, gatesStride, whh, hidden, into: dh,
                                                    hidden, m: batch, n: hidden, k: gateWidth, beta: 1)
                                            }
                                            shoal_lstm_step_backward(
                                                batch, hidden, gp + t * gatesBlock + d * gateWidth, gatesStride,
                                                s > 0 ? cp + previous : nil, stateStride, tp + state, stateStride, dh, hidden, dc,
                                                dg + t * gatesBlock + d * gateWidth, gatesStride)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            dGates.withPointer { dg in
                // Bias gradients: the column sums of the gate gradients (the same for both biases).
                let biasGradient = Tensor(shape: [gatesStride]) { shoal_column_sums(dg, rows, gatesStride, $0, 0) }
                for (d, indices) in weightIndices.enumerated() {
                    let (wih, whh, bih, bhh) = indices
                    let dgd = dg + d * gateWidth
                    tape.accumulate(wih) { out, beta in
                        timeMajor.withPointer {
                            GEMM.multiply(
                                dgd, gatesStride, transposeA: true, $0, width, into: out, width, m: gateWidth, n: width, k: rows,
                                beta: beta)
                        }
                    }
                    // Step t's gates pair with step t − 1's state going forward, t + 1's backward.
                    tape.accumulate(whh) { out, beta in
                        hiddenStates.withPointer { hp in
                            let (gradients, previous) =
                                d == 0 ? (dgd + gatesBlock, hp + d * hidden) : (dgd, hp + stateBlock + d * hidden)
                            GEMM.multiply(
                                gradients, gatesStride, transposeA: true, previous, stateStride, into: out, hidden, m: gateWidth,
                                n: hidden, k: (steps - 1) * batch, beta: beta)
                        }
                    }
                    biasGradient.withPointer { bg in
                        for index in [bih, bhh] {
                            tape.accumulate(index) { out, beta in
                                if beta == 0 {
                                    out.update(from: bg + d * gateWidth, count: gateWidth)
                                } else {
                                    shoal_add(out, bg + d * gateWidth, out, gateWidth)
                                }
                            }
                        }
                    }
                }
                guard inputIndex >= 0 else { return }
                let dInput = Tensor(shape: [steps, batch, width]) { out in
                    stackedWeights.withPointer {
                        GEMM.multiply(dg, gatesStride, $0, width, into: out, width, m: rows, n: width, k: gatesStride)
                    }
                }
                tape.accumulate(inputIndex, dInput)
            }
        }
    }

    /// One LSTM step as a single taped operation: gates = `input` (the input's projection,
    /// `[batch, 4H]`) + `hidden` · `weight`ᵀ + `bias`, in PyTorch's order (i, f, g, o); returns the
    /// new hidden and cell states side by side, `[batch, 2H]`, with a hand-written backward pass.
    public static func lstmCell(input: Variable, hidden: Variable, cell: Variable, weight: Variable, bias: Variable) -> Variable {
        let (projection, h, c, w) = (input.value, hidden.value, cell.value, weight.value)
        let (batch, size) = (h.shape[0], h.shape[1])
        precondition(projection.shape == [batch, 4 * size] && w.shape == [4 * size, size], "lstmCell: shapes do not fit")
        var gates = projection
        var state = Tensor(shape: [batch, 2 * size]) { _ in }
        var squashed = Tensor(shape: [batch, size]) { _ in }
        gates.withMutablePointer { gp in
            h.withPointer { hp in
                w.withPointer {
                    GEMM.multiply(
                        hp, size, $0, size, transposeB: true, into: gp, 4 * size, m: batch, n: 4 * size, k: size, beta: 1)
                }
            }
            c.withPointer { cp in
                state.withMutablePointer { sp in
                    squashed.withMutablePointer { tp in
                        bias.value.withPointer { bp in
                            shoal_lstm_step(batch, size, gp, 4 * size, bp, cp, size, sp + size, 2 * size, tp, size, sp, 2 * size)
                        }
                    }
                }
            }
        }
        let activated = gates
        let tanhCell = squashed
        let indices = (input.index, hidden.index, cell.index, weight.index, bias.index)
        let needs =
            input.needsGradient || hidden.needsGradient || cell.needsGradient || weight.needsGradient || bias.needsGradient
        return input.tape.record(state, needsGradient: needs) { upstream, tape in
            var dGates = Tensor(shape: [batch, 4 * size]) { _ in }
            var dCell = Tensor(shape: [batch, size]) { _ in }
            upstream.withPointer { up in
                dCell.withMutablePointer { dc in
                    for row in 0..<batch { (dc + row * size).update(from: up + row * 2 * size + size, count: size) }
                    activated.withPointer { gp in
                        c.withPointer { cp in
                            tanhCell.withPointer { tp in
                                dGates.withMutablePointer { dg in
                                    shoal_lstm_step_backward(
                                        batch, size, gp, 4 * size, cp, size, tp, size, up, 2 * size, dc, dg, 4 * size)
                                }
                            }
                        }
                    }
                }
            }
            tape.accumulate(indices.0, dGates)
            if indices.1 >= 0 { tape.accumulate(indices.1, Tensor.matmul(dGates, w)) }
            tape.accumulate(indices.2, dCell)
            if indices.3 >= 0 { tape.accumulate(indices.3, Tensor.matmul(dGates, h, transposeA: true)) }
            if indices.4 >= 0 { tape.accumulate(indices.4, dGates.sumRows()) }
        }
    }
}
