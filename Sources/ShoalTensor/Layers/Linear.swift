/// A fully connected layer in PyTorch's layout: `weight` `[out, in]`, `bias` `[out]`,
/// initialised as `nn.Linear` does (uniform in ±1/√in), from a seed.
public struct Linear: Sendable {
    public var weight: Tensor
    public var bias: Tensor

    public init(inputs: Int, outputs: Int, seed: UInt64) {
        let bound = 1 / Float(inputs).squareRoot()
        weight = .randomUniform(shape: [outputs, inputs], bound: bound, seed: seed)
        bias = .randomUniform(shape: [outputs], bound: bound, seed: seed &+ 1)
    }

    public init(weight: Tensor, bias: Tensor) {
        precondition(weight.rank == 2 && bias.shape == [weight.shape[0]], "Linear: weight \(weight.shape), bias \(bias.shape)")
        self.weight = weight
        self.bias = bias
    }

    /// Its parameters on `tape`, to use in a forward pass and read gradients from.
    public func parameters(on tape: Tape) -> (weight: Variable, bias: Variable) {
        (tape.variable(weight), tape.variable(bias))
    }
}
