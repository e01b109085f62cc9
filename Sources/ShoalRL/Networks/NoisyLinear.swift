import Foundation
import ShoalMarket
import ShoalTensor

/// A linear layer with learned, factorised Gaussian noise on its weights (Fortunato et al.,
/// "Noisy Networks for Exploration"): W = μ_W + σ_W ⊙ (f(ε_out) f(ε_in)ᵀ), b = μ_b + σ_b ⊙
/// f(ε_out), f(x) = sign(x)·√|x|. μ starts uniform in ±1/√in, σ at σ₀/√in.
public struct NoisyLinear: Sendable {
    public var weightMean: Tensor
    public var weightSpread: Tensor
    public var biasMean: Tensor
    public var biasSpread: Tensor
    /// The current noise; `resetNoise` draws new.
    public private(set) var weightNoise: Tensor
    public private(set) var biasNoise: Tensor
    /// μ + σ ⊙ ε for the current noise, for passes without a tape.
    private var noisyWeight: Tensor
    private var noisyBias: Tensor

    public init(inputs: Int, outputs: Int, sigma0: Float = 0.5, seed: UInt64) {
        let bound = 1 / Float(inputs).squareRoot()
        weightMean = .randomUniform(shape: [outputs, inputs], bound: bound, seed: seed)
        biasMean = .randomUniform(shape: [outputs], bound: bound, seed: seed &+ 1)
        weightSpread = Tensor(shape: [outputs, inputs], repeating: sigma0 / Float(inputs).squareRoot())
        biasSpread = Tensor(shape: [outputs], repeating: sigma0 / Float(inputs).squareRoot())
        weightNoise = Tensor(shape: [outputs, inputs])
        biasNoise = Tensor(shape: [outputs])
        noisyWeight = weightMean
        noisyBias = biasMean
    }

    public var inputs: Int { weightMean.shape[1] }
    public var outputs: Int { weightMean.shape[0] }

    /// μ_W, σ_W, μ_b, σ_b.
    public var tensors: [Tensor] {
        get { [weightMean, weightSpread, biasMean, biasSpread] }
        set {
            precondition(newValue.count == 4 && newValue[0].shape == weightMean.shape && newValue[2].shape == biasMean.shape)
            (weightMean, weightSpread, biasMean, biasSpread) = (newValue[0], newValue[1], newValue[2], newValue[3])
            noisyWeight = weightMean + weightSpread * weightNoise
            noisyBias = biasMean + biasSpread * biasNoise
        }
    }

    public mutating func resetNoise(using generator: inout SeededGenerator) {
        func scaled() -> Float {
            let value = Float(generator.normal())
            return value < 0 ? -(-value).squareRoot() : value.squareRoot()
        }
        let input = Tensor(shape: [1, inputs], scalars: (0..<inputs).map { _ in scaled() })
        let output = Tensor(shape: [outputs, 1], scalars: (0..<outputs).map { _ in scaled() })
        weightNoise = Tensor.matmul(output, input)
        biasNoise = output.reshaped([outputs])
        noisyWeight = weightMean + weightSpread * weightNoise
        noisyBias = biasMean + biasSpread * biasNoise
    }

    /// The forward pass on a tape, with `parameters` μ_W, σ_W, μ_b, σ_b as variables; `noisy:
    /// false` uses the means alone (evaluation).
    public func callAsFunction(_ x: Variable, _ parameters: ArraySlice<Variable>, noisy: Bool = true) -> Variable {
        let p = Array(parameters)
        guard noisy else { return Variable.linear(x, weight: p[0], bias: p[2]) }
        let tape = x.tape
        let weight = p[0] + p[1] * tape.constant(weightNoise)
        let bias = p[2] + p[3] * tape.constant(biasNoise)
        return Variable.linear(x, weight: weight, bias: bias)
    }

    /// The forward pass on plain tensors.
    public func predict(_ x: Tensor, noisy: Bool = true) -> Tensor {
        let (weight, bias) = noisy ? (noisyWeight, noisyBias) : (weightMean, biasMean)
        return Tensor.matmul(x, weight, transposeB: true) + bias
    }
}
