import CShoalKernels

extension Variable {
    /// 1-D convolution in PyTorch's layout: input `[batch, inChannels, length]`, weight
    /// `[outChannels, inChannels, kernel]`, bias `[outChannels]`, stride 1, `padding` zeros on
    /// each side; output `[batch, outChannels, outLength]`.
    public func conv1d(weight: Variable, bias: Variable?, padding: Int) -> Variable {
        conv1dTimeMajor(weight: weight, bias: bias, padding: padding).transposingLastTwo()
    }

    /// The same convolution with its output time-major, `[batch, outLength, outChannels]` (what
    /// attention and recurrent layers read), without the transposition.
    public func conv1dTimeMajor(weight: Variable, bias: Variable?, padding: Int) -> Variable {
        let w = weight.value
        precondition(
            value.rank == 3 && w.rank == 3 && w.shape[1] == value.shape[1], "conv1d: input \(value.shape), weight \(w.shape)")
        precondition(padding >= 0, "conv1d: padding must not be negative")
        precondition(bias.map { $0.shape == [w.shape[0]] } ?? true, "conv1d: the bias must be [\(w.shape[0])]")
        return Self.convolution(self, [(weight, bias, 0)], taps: w.shape[2], padding: padding)
    }

    /// Several convolutions of one input with odd kernels of different lengths, each padded by
    /// half its length (so every output keeps the input's length), their outputs side by side
    /// time-major: `[batch, length, Σ outChannels]` (a multi-scale convolution layer; PyTorch's
    /// equivalent is one `nn.Conv1d` per kernel and a concatenation). Weights and biases are in
    /// `nn.Conv1d`'s layout, one pair per kernel.
    ///
    /// The receptive fields of the longest kernel are laid out once, and the shorter kernels'
    /// weights sit centred in zero-padded rows, so the whole layer is one `cblas_sgemm`.
    public static func multiKernelConv1d(_ input: Variable, weights: [Variable], biases: [Variable]) -> Variable {
        precondition(!weights.isEmpty && weights.count == biases.count, "multiKernelConv1d: one bias per weight")
        let taps = weights.map { $0.shape[2] }.max() ?? 1
        for (weight, bias) in zip(weights, biases) {
            precondition(
                input.shape.count == 3 && weight.shape.count == 3 && weight.shape[1] == input.shape[1]
                    && weight.shape[2] % 2 == 1 && bias.shape == [weight.shape[0]],
                "multiKernelConv1d: input \(input.shape), weight \(weight.shape), bias \(bias.shape) (odd kernels)")
        }
        let kernels = zip(weights, biases).map { weight, bias in (weight, Optional(bias), (taps - weight.shape[2]) / 2) }
        return convolution(input, kernels, taps: taps, padding: taps / 2)
    }

    /// Convolutions of `input` `[batch, channels, length]` sharing one im2col of `taps` taps:
    /// kernel i's weight `[out_i, channels, k_i]` occupies taps `offset_i..<offset_i + k_i`.
    /// Output `[batch, outLength, Σ out_i]`, time-major.
    private static func convolution(
        _ input: Variable, _ kernels: [(weight: Variable, bias: Variable?, offset: Int)], taps: Int, padding: Int
    ) -> Variable {
        let x = input.value
        let (batch, channels, length) = (x.shape[0], x.shape[1], x.shape[2])
        let outLength = length + 2 * padding - taps + 1
        precondition(outLength > 0, "conv1d: the kernel \(taps) is longer than the padded input \(length + 2 * padding)")
        let field = taps * channels
        let rows = batch * outLength
        let outputs = kernels.map { $0.weight.shape[0] }
        let totalOut = outputs.reduce(0, +)
        let timeMajor = x.transposingLastTwo()  // [batch, length, channels]
        // Every output step's receptive field as a row of taps × channels (zeros past the edges).
        let columns = Tensor(shape: [rows, field]) { col in
            timeMajor.withPointer { source in
                for b in 0..<batch {
                    for t in 0..<outLength {
                        let row = col + (b * outLength + t) * field
                        for k in 0..<taps {
                            let position = t + k - padding
                            if position >= 0 && position < length {
                                (row + k * channels).update(from: source + (b * length + position) * channels, count: channels)
                            } else {
                                (row + k * channels).initialize(repeating: 0, count: channels)
                            }
                        }
                    }
                }
            }
        }
        // All kernels' weights as one [Σ out, taps, channels] matrix, zero outside each kernel's taps.
        var combined = Tensor(shape: [totalOut, taps, channels])
        var firstOut = 0
        for (kernel, out) in zip(kernels, outputs) {
            let reordered = kernel.weight.value.permuted([0, 2, 1])  // [out, k, channels]
            let k = kernel.weight.shape[2]
            reordered.withPointer { source in
                combined.withMutablePointer { target in
                    for o in 0..<out {
                        (target + ((firstOut + o) * taps + kernel.offset) * channels).update(
                            from: source + o * k * channels, count: k * channels)
                    }
                }
            }
            firstOut += out
        }
        let biases = kernels.compactMap { $0.bias?.value }
        let biasRow = biases.count == kernels.count ? Tensor.concatenate(biases, axis: 0) : nil
        let output = Tensor(shape: [batch, outLength, totalOut]) { out in
            columns.withPointer { col in
                combined.withPointer { weights in
                    if let biasRow {
                        biasRow.withPointer { bp in
                            for row in 0..<rows { (out + row * totalOut).update(from: bp, count: totalOut) }
                        }
                    }
                    GEMM.multiply(
                        col, field, weights, field, transposeB: true, into: out, totalOut, m: rows, n: totalOut, k: field,
                        beta: biasRow == nil ? 0 : 1)
                }
            }
        }
        let inputIndex = input.index
        let indices = kernels.map { ($0.weight.index, $0.bias?.index ?? -1) }
        let shapes = kernels.map { ($0.weight.shape, $0.offset) }
        let needs = input.needsGradient || kernels.contains { $0.weight.needsGradient || ($0.bias?.needsGradient ?? false) }
        return input.tape.record(output, needsGradient: needs) { g, tape in
            g.withPointer { gp in
                if indices.contains(where: { $0.0 >= 0 }) {
                    // dW = gᵀ · columns, then each kernel's taps out of it.
                    let dCombined = Tensor(shape: [totalOut, taps, channels]) { dw in
                        columns.withPointer { col in
                            GEMM.multiply(
                                gp, totalOut, transposeA: true, col, field, into: dw, field, m: totalOut, n: field, k: rows)
                        }
                    }
                    var firstOut = 0
                    for ((weightIndex, _), (shape, offset)) in zip(indices, shapes) {
                        let (out, k) = (shape[0], shape[2])
                        if weightIndex >= 0 {
                            let taps = Tensor(shape: [out, k, channels]) { target in
                                dCombined.withPointer { source in
                                    for o in 0..<out {
                                        (target + o * k * channels).update(
                                            from: source + ((firstOut + o) * taps + offset) * channels, count: k * channels)
                                    }
                                }
                            }
                            tape.accumulate(weightIndex, taps.permuted([0, 2, 1]))
                        }
                        firstOut += out
                    }
                }
                var firstOut = 0
                for ((_, biasIndex), out) in zip(indices, outputs) {
                    tape.accumulate(biasIndex) { target, beta in
                        if beta == 0 { target.initialize(repeating: 0, count: out) }
                        for row in 0..<rows { shoal_add(target, gp + row * totalOut + firstOut, target, out) }
                    }
                    firstOut += out
                }
                guard inputIndex >= 0 else { return }
                // dcolumns = g · W, then back onto the input positions it came from.
                let dColumns = Tensor(shape: [rows, field]) { dcol in
                    combined.withPointer { weights in
                        GEMM.multiply(gp, totalOut, weights, field, into: dcol, field, m: rows, n: field, k: totalOut)
                    }
                }
                var dTimeMajor = Tensor(shape: [batch, length, channels], repeating: 0)
                dColumns.withPointer { dcol in
                    dTimeMajor.withMutablePointer { dx in
                        for b in 0..<batch {
                            for t in 0..<outLength {
                                let row = dcol + (b * outLength + t) * field
                                for k in 0..<taps {
                                    let position = t + k - padding
                                    guard position >= 0 && position < length else { continue }
                                    let destination = dx + (b * length + position) * channels
                                    shoal_add(destination, row + k * channels, destination, channels)
                                }
                            }
                        }
                    }
                }
                tape.accumulate(inputIndex, dTimeMajor.transposingLastTwo())
            }
        }
    }
}
