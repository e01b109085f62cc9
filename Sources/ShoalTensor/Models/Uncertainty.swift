import Foundation

/// What Monte Carlo dropout says about one window: class probabilities averaged over stochastic
/// passes, the confidence (the top probability), and the regression's mean and spread.
public struct MonteCarloPrediction: Sendable, Equatable {
    public var probabilities: [Float]
    public var confidence: Float
    public var predictedClass: Int
    public var regressionMean: Float
    public var regressionStandardDeviation: Float

    public init(
        probabilities: [Float], confidence: Float, predictedClass: Int, regressionMean: Float, regressionStandardDeviation: Float
    ) {
        self.probabilities = probabilities
        self.confidence = confidence
        self.predictedClass = predictedClass
        self.regressionMean = regressionMean
        self.regressionStandardDeviation = regressionStandardDeviation
    }
}

extension HybridModel {
    /// `passes` stochastic forward passes of one window (`[1, features, steps]` or
    /// `[features, steps]`), batched into one pass with dropout on.
    public func monteCarlo(_ window: Tensor, passes: Int = 30, seed: UInt64 = 0) -> MonteCarloPrediction {
        precondition(passes >= 2, "Monte Carlo dropout needs at least two passes")
        let single = window.count
        let batch = Tensor(
            shape: [passes, config.features, single / config.features],
            scalars: Array(repeatElement(window.scalars, count: passes).joined()))
        let tape = Tape(recording: false)
        let output = forward(tape.variable(batch), variables: variables(on: tape), training: true, seed: seed)
        let probabilities = output.logits.value.softmax()
        let classes = config.classes
        var mean = [Float](repeating: 0, count: classes)
        for pass in 0..<passes { for c in 0..<classes { mean[c] += probabilities.scalars[pass * classes + c] / Float(passes) } }
        let regression = output.regression.value.scalars
        let average = regression.reduce(0, +) / Float(passes)
        let spread = (regression.reduce(0) { $0 + ($1 - average) * ($1 - average) } / Float(passes - 1)).squareRoot()
        let top = mean.indices.max { mean[$0] < mean[$1] } ?? 0
        return MonteCarloPrediction(
            probabilities: mean, confidence: mean[top], predictedClass: top, regressionMean: average,
            regressionStandardDeviation: spread)
    }
}

/// K models whose class probabilities and regressions are mixed by learnable softmax weights.
public struct HybridEnsemble: Sendable {
    public var members: [HybridModel]
    /// One logit per member; the mixing weights are their softmax.
    public var weightLogits: Tensor

    public init(members: [HybridModel]) {
        precondition(!members.isEmpty, "an ensemble needs members")
        self.members = members
        weightLogits = Tensor(shape: [members.count])
    }

    public var weights: [Float] { weightLogits.reshaped([1, members.count]).softmax().scalars }

    /// The ensemble's class probabilities `[batch, classes]` and regression `[batch, 1]` on a tape,
    /// with `logits` the weight logits as a variable (to learn them).
    public func forward(
        _ input: Tensor, tape: Tape, logits: Variable, training: Bool
    ) -> (probabilities: Variable, regression: Variable) {
        let mix = logits.reshaped([1, members.count]).softmax()
        var probabilities: Variable?
        var regression: Variable?
        for (index, member) in members.enumerated() {
            let output = member.forward(tape.variable(input), variables: member.variables(on: tape), training: training)
            let weight = mix.sliceLast(index..<index + 1).reshaped([1])
            let p = output.logits.softmax() * weight
            let r = output.regression * weight
            probabilities = probabilities.map { $0 + p } ?? p
            regression = regression.map { $0 + r } ?? r
        }
        guard let probabilities, let regression else { preconditionFailure("an ensemble needs members") }
        return (probabilities, regression)
    }
}
