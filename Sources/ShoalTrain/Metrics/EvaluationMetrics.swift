import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How well the model did on one split.
public struct EvaluationMetrics: Codable, Sendable, Equatable {
    /// The training loss: cross-entropy + regressionWeight × MSE.
    public var loss: Double
    public var accuracy: Double
    /// The unweighted mean of each class's F1 score, over the classes that occur in the labels
    /// or the predictions (scikit-learn's `f1_score(average="macro")` on those labels).
    public var macroF1: Double
    /// Of the regression head, on returns divided by the training split's deviation.
    public var mse: Double
    /// The information coefficient: Spearman's rank correlation of predicted and realised returns.
    public var informationCoefficient: Double
    public var count: Int

    public init(loss: Double, accuracy: Double, macroF1: Double, mse: Double, informationCoefficient: Double, count: Int) {
        self.loss = loss
        self.accuracy = accuracy
        self.macroF1 = macroF1
        self.mse = mse
        self.informationCoefficient = informationCoefficient
        self.count = count
    }

    /// Metrics of predicted classes and returns against the truth.
    public static func of(
        predictions: [Int], labels: [Int], predictedReturns: [Float], returns: [Float], loss: Double, classes: Int = 3
    ) -> EvaluationMetrics {
        let count = labels.count
        let correct = zip(predictions, labels).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
        var scores: [Double] = []
        for label in 0..<classes {
            let truePositive = zip(predictions, labels).reduce(0) { $0 + ($1.0 == label && $1.1 == label ? 1 : 0) }
            let predicted = predictions.reduce(0) { $0 + ($1 == label ? 1 : 0) }
            let actual = labels.reduce(0) { $0 + ($1 == label ? 1 : 0) }
            guard predicted + actual > 0 else { continue }
            scores.append(2 * Double(truePositive) / Double(predicted + actual))
        }
        let mse =
            count == 0
            ? .nan : zip(predictedReturns, returns).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(count)
        return EvaluationMetrics(
            loss: loss, accuracy: count == 0 ? .nan : Double(correct) / Double(count),
            macroF1: scores.isEmpty ? .nan : scores.reduce(0, +) / Double(scores.count), mse: mse,
            informationCoefficient: spearman(predictedReturns.map(Double.init), returns.map(Double.init)), count: count)
    }

    /// Spearman's rank correlation (ties take their mean rank); NaN when either side is constant.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double {
        guard x.count == y.count, x.count > 1 else { return .nan }
        return pearson(ranks(x), ranks(y))
    }

    static func ranks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count, values[order[end + 1]] == values[order[start]] { end += 1 }
            let rank = Double(start + end) / 2 + 1
            for position in start...end { ranks[order[position]] = rank }
            start = end + 1
        }
        return ranks
    }

    static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        let n = Double(x.count)
        let meanX = x.reduce(0, +) / n
        let meanY = y.reduce(0, +) / n
        var covariance = 0.0
        var varianceX = 0.0
        var varianceY = 0.0
        for (a, b) in zip(x, y) {
            covariance += (a - meanX) * (b - meanY)
            varianceX += (a - meanX) * (a - meanX)
            varianceY += (b - meanY) * (b - meanY)
        }
        guard varianceX > 0, varianceY > 0 else { return .nan }
        return covariance / (varianceX * varianceY).squareRoot()
    }
}

/// The one-sided exact binomial test: the probability of at least `successes` successes in
/// `trials` trials that each succeed with probability `probability` (scipy's
/// `binomtest(k, n, p, alternative="greater").pvalue`).
public func binomialTailProbability(successes: Int, trials: Int, probability: Double) -> Double {
    guard trials > 0, successes > 0 else { return 1 }
    guard successes <= trials else { return 0 }
    if probability <= 0 { return 0 }
    if probability >= 1 { return 1 }
    let logP = log(probability)
    let logQ = log1p(-probability)
    let logTrials = logGamma(Double(trials) + 1)
    func logTerm(_ k: Int) -> Double {
        logTrials - logGamma(Double(k) + 1) - logGamma(Double(trials - k) + 1) + Double(k) * logP + Double(trials - k) * logQ
    }
    // Summed from the largest term down, in log space, so that no term underflows to zero first.
    let terms = (successes...trials).map(logTerm)
    let largest = terms.max() ?? -.infinity
    guard largest.isFinite else { return 0 }
    let sum = terms.reduce(0.0) { $0 + exp($1 - largest) }
    return min(1, exp(largest + log(sum)))
}

/// The log of the gamma function (C's `lgamma`, named apart from the overlay's overloads).
private func logGamma(_ x: Double) -> Double {
    #if canImport(Glibc)
    Glibc.lgamma(x)
    #else
    Foundation.lgamma(x)
    #endif
}
