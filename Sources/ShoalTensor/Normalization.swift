import Foundation

extension Variable {
    /// Layer normalisation over the last dimension, PyTorch's `nn.LayerNorm`: (x − mean) /
    /// sqrt(biased variance + eps) × weight + bias.
    public func layerNorm(weight: Variable, bias: Variable, epsilon: Float = 1e-5) -> Variable {
        let x = value
        let width = x.shape[x.rank - 1]
        precondition(weight.shape == [width] && bias.shape == [width], "layerNorm: weight and bias must be [\(width)]")
        let rows = x.count / width
        let gamma = weight.value.scalars
        let beta = bias.value.scalars
        var normalized = x
        var inverse = [Float](repeating: 0, count: rows)
        var output = x
        for row in 0..<rows {
            let start = row * width
            var mean: Float = 0
            for i in 0..<width { mean += x.scalars[start + i] }
            mean /= Float(width)
            var variance: Float = 0
            for i in 0..<width { variance += (x.scalars[start + i] - mean) * (x.scalars[start + i] - mean) }
            variance /= Float(width)
            let scale = 1 / (variance + epsilon).squareRoot()
            inverse[row] = scale
            for i in 0..<width {
                let hat = (x.scalars[start + i] - mean) * scale
                normalized.scalars[start + i] = hat
                output.scalars[start + i] = hat * gamma[i] + beta[i]
            }
        }
        return tape.record(output, inputs: [self, weight, bias]) { g in
            var dx = Tensor(shape: x.shape)
            var dGamma = Tensor(shape: [width])
            var dBeta = Tensor(shape: [width])
            for row in 0..<rows {
                let start = row * width
                var meanG: Float = 0
                var meanGX: Float = 0
                for i in 0..<width {
                    let gg = g.scalars[start + i] * gamma[i]
                    meanG += gg
                    meanGX += gg * normalized.scalars[start + i]
                    dGamma.scalars[i] += g.scalars[start + i] * normalized.scalars[start + i]
                    dBeta.scalars[i] += g.scalars[start + i]
                }
                meanG /= Float(width)
                meanGX /= Float(width)
                for i in 0..<width {
                    let gg = g.scalars[start + i] * gamma[i]
                    dx.scalars[start + i] = inverse[row] * (gg - meanG - normalized.scalars[start + i] * meanGX)
                }
            }
            return [dx, dGamma, dBeta]
        }
    }

    /// GELU, exact (PyTorch's default): x · Φ(x).
    public func gelu() -> Variable {
        let x = value
        let y = x.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot().float)) }
        return tape.record(y, inputs: [self]) { g in
            [
                g.zip(x) { gradient, v in
                    let cdf = 0.5 * (1 + erf(v / 2.0.squareRoot().float))
                    let pdf = exp(-0.5 * v * v) / (2 * Float.pi).squareRoot()
                    return gradient * (cdf + v * pdf)
                }
            ]
        }
    }

    /// Inverted dropout: in training, each element is zeroed with probability `p` and the rest
    /// scaled by 1 / (1 − p), the mask drawn from `seed`; outside training, the identity.
    public func dropout(_ p: Float, training: Bool, seed: UInt64) -> Variable {
        precondition((0..<1).contains(p), "dropout probability must be in [0, 1)")
        guard training, p > 0 else { return self }
        let keep = 1 - p
        let draws = Tensor.randomUniform(shape: value.shape, bound: 1, seed: seed)
        let mask = draws.map { abs($0) < keep ? 1 / keep : 0 }
        return tape.record(value * mask, inputs: [self]) { g in [g * mask] }
    }
}

extension Double {
    var float: Float { Float(self) }
}
