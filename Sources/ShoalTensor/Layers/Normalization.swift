import CShoalKernels
import Foundation

extension Variable {
    /// Layer normalisation over the last dimension, PyTorch's `nn.LayerNorm`: (x − mean) /
    /// sqrt(biased variance + eps) × weight + bias.
    public func layerNorm(weight: Variable, bias: Variable, epsilon: Float = 1e-5) -> Variable {
        let x = value
        let width = x.shape[x.rank - 1]
        precondition(weight.shape == [width] && bias.shape == [width], "layerNorm: weight and bias must be [\(width)]")
        let rows = width == 0 ? 0 : x.count / width
        let (gamma, beta) = (weight.value, bias.value)
        var normalized = Tensor(shape: x.shape) { _ in }
        var inverse = Tensor(shape: [rows]) { _ in }
        let output = Tensor(shape: x.shape) { out in
            x.withPointer { xp in
                gamma.withPointer { gp in
                    beta.withPointer { bp in
                        normalized.withMutablePointer { hat in
                            inverse.withMutablePointer { inv in
                                Compute.parallelFor(Compute.threads, cost: rows * width * 8 / Swift.max(1, Compute.threads)) {
                                    part in
                                    let range = Self.part(part, of: rows)
                                    shoal_layer_norm(
                                        xp + range.lowerBound * width, gp, bp, out + range.lowerBound * width,
                                        hat + range.lowerBound * width, inv + range.lowerBound, range.count, width,
                                        epsilon)
                                }
                            }
                        }
                    }
                }
            }
        }
        let (xi, wi, bi) = (index, weight.index, bias.index)
        let needs = needsGradient || weight.needsGradient || bias.needsGradient
        return tape.record(output, needsGradient: needs) { g, tape in
            let parts = Swift.max(1, Swift.min(Compute.threads, rows))
            var dx = Tensor(shape: x.shape) { _ in }
            // Each part sums its rows' weight and bias gradients apart; the parts are added after.
            var partials = Tensor(shape: [parts, 2, width], repeating: 0)
            g.withPointer { gp in
                normalized.withPointer { hat in
                    inverse.withPointer { inv in
                        gamma.withPointer { gammaPointer in
                            dx.withMutablePointer { dxp in
                                partials.withMutablePointer { sums in
                                    Compute.parallelFor(parts, cost: rows * width * 8 / parts) { part in
                                        let range = Self.part(part, of: rows, parts: parts)
                                        let offset = range.lowerBound * width
                                        shoal_layer_norm_backward(
                                            gp + offset, hat + offset, inv + range.lowerBound, gammaPointer, dxp + offset,
                                            sums + part * 2 * width, sums + (part * 2 + 1) * width, range.count, width)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            tape.accumulate(xi, dx)
            partials.withPointer { sums in
                tape.accumulate(wi) { out, beta in
                    if beta == 0 { out.initialize(repeating: 0, count: width) }
                    for part in 0..<parts { shoal_add(out, sums + part * 2 * width, out, width) }
                }
                tape.accumulate(bi) { out, beta in
                    if beta == 0 { out.initialize(repeating: 0, count: width) }
                    for part in 0..<parts { shoal_add(out, sums + (part * 2 + 1) * width, out, width) }
                }
            }
        }
    }

    /// Rows of part `part` when `rows` are split into `parts` (default: the compute threads).
    static func part(_ part: Int, of rows: Int, parts: Int = Compute.threads) -> Range<Int> {
        let parts = Swift.max(1, parts)
        return (rows * part / parts)..<(rows * (part + 1) / parts)
    }

    /// GELU, exact (PyTorch's default): x · Φ(x).
    public func gelu() -> Variable {
        let x = value
        let y = x.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot().float)) }
        let index = self.index
        return tape.record(y, needsGradient: needsGradient) { g, tape in
            let gradient = g.zip(x) { gradient, v in
                let cdf = 0.5 * (1 + erf(v / 2.0.squareRoot().float))
                let pdf = Foundation.exp(-0.5 * v * v) / (2 * Float.pi).squareRoot()
                return gradient * (cdf + v * pdf)
            }
            tape.accumulate(index, gradient)
        }
    }

    /// Inverted dropout: in training, each element is zeroed with probability `p` and the rest
    /// scaled by 1 / (1 − p), the mask drawn from `seed`; outside training, the identity.
    public func dropout(_ p: Float, training: Bool, seed: UInt64) -> Variable {
        precondition((0..<1).contains(p), "dropout probability must be in [0, 1)")
        guard training, p > 0 else { return self }
        let keep = 1 - p
        let mask = Tensor.randomUniform(shape: value.shape, bound: 1, seed: seed).map { Swift.abs($0) < keep ? 1 / keep : 0 }
        let index = self.index
        return tape.record(value * mask, needsGradient: needsGradient) { g, tape in tape.accumulate(index, g * mask) }
    }
}

extension Double {
    var float: Float { Float(self) }
}
