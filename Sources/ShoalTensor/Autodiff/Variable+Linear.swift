import CShoalKernels

extension Variable {
    /// The matrix product of rank-2 variables.
    public static func matmul(_ a: Variable, _ b: Variable) -> Variable {
        let (x, y) = (a.value, b.value)
        let (ai, bi) = (a.index, b.index)
        let (m, k, n) = (x.shape[0], x.shape[1], y.shape[1])
        return a.tape.record(Tensor.matmul(x, y), needsGradient: a.needsGradient || b.needsGradient) { g, tape in
            g.withPointer { gp in
                // dA = G · Bᵀ, dB = Aᵀ · G, written straight into the gradients.
                tape.accumulate(ai) { out, beta in
                    y.withPointer { GEMM.multiply(gp, n, $0, n, transposeB: true, into: out, k, m: m, n: k, k: n, beta: beta) }
                }
                tape.accumulate(bi) { out, beta in
                    x.withPointer { GEMM.multiply($0, k, transposeA: true, gp, n, into: out, n, m: k, n: n, k: m, beta: beta) }
                }
            }
        }
    }

    /// `x · Wᵀ + b` for `x` `[batch, in]` (or `[…, in]`), `W` `[out, in]` (PyTorch's layout) and
    /// `b` `[out]`.
    public static func linear(_ x: Variable, weight: Variable, bias: Variable?) -> Variable {
        let (input, w) = (x.value, weight.value)
        let inputs = w.shape[1]
        let outputs = w.shape[0]
        precondition(
            input.rank >= 1 && input.shape[input.rank - 1] == inputs,
            "linear: input \(input.shape) for a weight of \(w.shape)")
        precondition(bias.map { $0.shape == [outputs] } ?? true, "linear: the bias must be [\(outputs)]")
        let rows = inputs == 0 ? 0 : input.count / inputs
        let biasValue = bias?.value
        let output = Tensor(shape: Array(input.shape.dropLast()) + [outputs]) { out in
            input.withPointer { xp in
                w.withPointer { wp in
                    if let biasValue {
                        biasValue.withPointer { bp in
                            for row in 0..<rows { (out + row * outputs).update(from: bp, count: outputs) }
                        }
                    }
                    GEMM.multiply(
                        xp, inputs, wp, inputs, transposeB: true, into: out, outputs, m: rows, n: outputs, k: inputs,
                        beta: biasValue == nil ? 0 : 1)
                }
            }
        }
        let (xi, wi, bi) = (x.index, weight.index, bias?.index ?? -1)
        let needs = x.needsGradient || weight.needsGradient || (bias?.needsGradient ?? false)
        return x.tape.record(output, needsGradient: needs) { g, tape in
            g.withPointer { gp in
                tape.accumulate(xi) { out, beta in
                    w.withPointer {
                        GEMM.multiply(gp, outputs, $0, inputs, into: out, inputs, m: rows, n: inputs, k: outputs, beta: beta)
                    }
                }
                tape.accumulate(wi) { out, beta in
                    input.withPointer {
                        GEMM.multiply(
                            gp, outputs, transposeA: true, $0, inputs, into: out, inputs, m: outputs, n: inputs, k: rows,
                            beta: beta)
                    }
                }
                tape.accumulate(bi) { out, beta in shoal_column_sums(gp, rows, outputs, out, beta == 0 ? 0 : 1) }
            }
        }
    }

    /// Products of matching matrices: `[n, m, k] × [n, k, p]` (or `[n, p, k]` with `transposeB`).
    public static func batchedMatmul(_ a: Variable, _ b: Variable, transposeB: Bool = false) -> Variable {
        let (x, y) = (a.value, b.value)
        let (ai, bi) = (a.index, b.index)
        let product = Tensor.batchedMatmul(x, y, transposeB: transposeB)
        return a.tape.record(product, needsGradient: a.needsGradient || b.needsGradient) { g, tape in
            if transposeB {
                // out = x · yᵀ: dx = g · y, dy = gᵀ · x
                if ai >= 0 { tape.accumulate(ai, Tensor.batchedMatmul(g, y)) }
                if bi >= 0 { tape.accumulate(bi, Tensor.batchedMatmul(g, x, transposeA: true)) }
            } else {
                if ai >= 0 { tape.accumulate(ai, Tensor.batchedMatmul(g, y, transposeB: true)) }
                if bi >= 0 { tape.accumulate(bi, Tensor.batchedMatmul(x, g, transposeA: true)) }
            }
        }
    }
}
