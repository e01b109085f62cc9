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
    ///
    /// The input is laid out time-major once; every output step's receptive field is then a
    /// row of `kernel × inChannels` values (zeros past the edges), and the whole batch is one
    /// `cblas_sgemm` against the weights reordered to `[out, kernel, in]`.
    public func conv1dTimeMajor(weight: Variable, bias: Variable?, padding: Int) -> Variable {
        let x = value
        let w = weight.value
        precondition(x.rank == 3 && w.rank == 3 && w.shape[1] == x.shape[1], "conv1d: input \(x.shape), weight \(w.shape)")
        precondition(padding >= 0, "conv1d: padding must not be negative")
        let (batch, channels, length) = (x.shape[0], x.shape[1], x.shape[2])
        let (outChannels, kernel) = (w.shape[0], w.shape[2])
        let outLength = length + 2 * padding - kernel + 1
        precondition(outLength > 0, "conv1d: the kernel \(kernel) is longer than the padded input \(length + 2 * padding)")
        precondition(bias.map { $0.shape == [outChannels] } ?? true, "conv1d: the bias must be [\(outChannels)]")
        let field = kernel * channels
        let rows = batch * outLength
        let timeMajor = x.transposingLastTwo()  // [batch, length, channels]
        let columns = Tensor(shape: [rows, field]) { col in
            timeMajor.withPointer { input in
                for b in 0..<batch {
                    for t in 0..<outLength {
                        let row = col + (b * outLength + t) * field
                        for k in 0..<kernel {
                            let source = t + k - padding
                            if source >= 0 && source < length {
                                (row + k * channels).update(from: input + (b * length + source) * channels, count: channels)
                            } else {
                                (row + k * channels).initialize(repeating: 0, count: channels)
                            }
                        }
                    }
                }
            }
        }
        let reordered = w.permuted([0, 2, 1])  // [out, kernel, in]
        let biasValue = bias?.value
        let output = Tensor(shape: [batch, outLength, outChannels]) { out in
            columns.withPointer { col in
                reordered.withPointer { weights in
                    if let biasValue {
                        biasValue.withPointer { bp in
                            for row in 0..<rows { (out + row * outChannels).update(from: bp, count: outChannels) }
                        }
                    }
                    GEMM.multiply(
                        col, field, weights, field, transposeB: true, into: out, outChannels, m: rows, n: outChannels, k: field,
                        beta: biasValue == nil ? 0 : 1)
                }
            }
        }
        let (xi, wi, bi) = (index, weight.index, bias?.index ?? -1)
        let needs = needsGradient || weight.needsGradient || (bias?.needsGradient ?? false)
        return tape.record(output, needsGradient: needs) { g, tape in
            g.withPointer { gp in
                if wi >= 0 {
                    let dReordered = Tensor(shape: [outChannels, kernel, channels]) { dw in
                        columns.withPointer { col in
                            GEMM.multiply(
                                gp, outChannels, transposeA: true, col, field, into: dw, field, m: outChannels, n: field, k: rows)
                        }
                    }
                    tape.accumulate(wi, dReordered.permuted([0, 2, 1]))
                }
                tape.accumulate(bi) { out, beta in shoal_column_sums(gp, rows, outChannels, out, beta == 0 ? 0 : 1) }
                guard xi >= 0 else { return }
                let dColumns = Tensor(shape: [rows, field]) { dcol in
                    reordered.withPointer { weights in
                        GEMM.multiply(gp, outChannels, weights, field, into: dcol, field, m: rows, n: field, k: outChannels)
                    }
                }
                var dTimeMajor = Tensor(shape: [batch, length, channels], repeating: 0)
                dColumns.withPointer { dcol in
                    dTimeMajor.withMutablePointer { dx in
                        for b in 0..<batch {
                            for t in 0..<outLength {
                                let row = dcol + (b * outLength + t) * field
                                for k in 0..<kernel {
                                    let target = t + k - padding
                                    guard target >= 0 && target < length else { continue }
                                    let destination = dx + (b * length + target) * channels
                                    shoal_add(destination, row + k * channels, destination, channels)
                                }
                            }
                        }
                    }
                }
                tape.accumulate(xi, dTimeMajor.transposingLastTwo())
            }
        }
    }
}
