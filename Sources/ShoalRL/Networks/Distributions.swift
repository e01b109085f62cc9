import Foundation
import ShoalMarket
import ShoalTensor

/// A categorical policy over discrete actions, from logits.
public enum Categorical {
    /// Per-row entropies `[batch]` from log-probabilities `[batch, actions]`.
    public static func entropy(_ logProbabilities: Variable) -> Variable {
        -(logProbabilities.exp() * logProbabilities).sumLast()
    }

    /// One action per row of `logits` `[batch, actions]`, drawn from its softmax.
    public static func sample(_ logits: Tensor, using generator: inout SeededGenerator) -> [Int] {
        let probabilities = logits.softmax()
        let width = logits.shape[logits.rank - 1]
        return (0..<(logits.count / width)).map { row in
            var threshold = Float(generator.uniform())
            for action in 0..<width {
                threshold -= probabilities.scalars[row * width + action]
                if threshold <= 0 { return action }
            }
            return width - 1
        }
    }
}

/// A Gaussian policy with a diagonal covariance.
public enum DiagonalGaussian {
    static let logTwoPi = Float(Foundation.log(2 * Double.pi))

    /// log N(actions; mean, exp(logStd)²) summed over the action's dimensions: `[batch]`.
    /// `logStd` is `[dimension]` (shared by every row, as PPO's) or `[batch, dimension]`.
    public static func logProbability(of actions: Tensor, mean: Variable, logStd: Variable) -> Variable {
        let tape = mean.tape
        let dimension = Float(mean.shape[mean.shape.count - 1])
        let z = (tape.constant(actions) - mean) / logStd.exp()
        let spread = logStd.shape.count == 1 ? logStd.sum() : logStd.sumLast()
        let squares: Variable = z.squared().sumLast() * -0.5
        return squares - spread - 0.5 * dimension * logTwoPi
    }

    /// The entropy of a Gaussian with `logStd` `[dimension]` (a scalar).
    public static func entropy(logStd: Variable) -> Variable {
        logStd.sum() + 0.5 * Float(logStd.shape[0]) * (1 + logTwoPi)
    }

    /// Samples `mean + exp(logStd) · ε`, row by row.
    public static func sample(mean: Tensor, logStd: Tensor, using generator: inout SeededGenerator) -> [Float] {
        let dimension = mean.shape[mean.rank - 1]
        let perRow = logStd.rank == 1
        return (0..<mean.count).map { index in
            let spread = logStd.scalars[perRow ? index % dimension : index]
            return mean.scalars[index] + Foundation.exp(spread) * Float(generator.normal())
        }
    }
}
