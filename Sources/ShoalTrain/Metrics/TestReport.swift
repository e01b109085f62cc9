import Foundation

/// The finished model on the test split, beside always predicting the training split's most
/// common class, with the exact one-sided binomial test of the model's accuracy against that
/// baseline's.
public struct TestReport: Codable, Sendable, Equatable {
    public var metrics: EvaluationMetrics
    /// The most common class of the training split (0 Sell, 1 Hold, 2 Buy).
    public var majorityClass: Int
    /// The baseline's accuracy on the test split.
    public var baselineAccuracy: Double
    /// The baseline's macro-F1 on the test split.
    public var baselineMacroF1: Double
    /// P(at least the model's correct count | each test window right with the baseline's accuracy).
    public var pValue: Double
    /// The epoch whose weights were tested.
    public var epoch: Int

    /// Whether the model beat the baseline at the 5% level.
    public var beatsBaseline: Bool { pValue < 0.05 && metrics.accuracy > baselineAccuracy }

    public init(metrics: EvaluationMetrics, trainCounts: [Int], testLabels: [Int32], epoch: Int) {
        self.metrics = metrics
        self.epoch = epoch
        majorityClass = trainCounts.indices.max { trainCounts[$0] < trainCounts[$1] } ?? 1
        let labels = testLabels.map(Int.init)
        let baseline = EvaluationMetrics.of(
            predictions: Array(repeating: majorityClass, count: labels.count), labels: labels,
            predictedReturns: Array(repeating: 0, count: labels.count), returns: Array(repeating: 0, count: labels.count),
            loss: .nan)
        baselineAccuracy = baseline.accuracy
        baselineMacroF1 = baseline.macroF1
        let correct = Int((metrics.accuracy * Double(metrics.count)).rounded())
        pValue = binomialTailProbability(successes: correct, trials: metrics.count, probability: baselineAccuracy)
    }

    static let classNames = ["Sell", "Hold", "Buy"]

    /// A few lines for a person: the figures, and plainly whether the model beat the baseline.
    public var summary: String {
        let name = Self.classNames.indices.contains(majorityClass) ? Self.classNames[majorityClass] : "\(majorityClass)"
        var lines = [
            "Test split (\(metrics.count) windows, weights of epoch \(epoch)):",
            String(
                format: "  model:    accuracy %.4f, macro-F1 %.4f, loss %.4f, MSE %.4f, IC %.4f", metrics.accuracy, metrics.macroF1,
                metrics.loss, metrics.mse, metrics.informationCoefficient),
            String(
                format: "  baseline: always %@ (the training split's most common class): accuracy %.4f, macro-F1 %.4f", name,
                baselineAccuracy, baselineMacroF1),
            String(format: "  one-sided binomial test of the model's accuracy against the baseline's: p = %.4g", pValue),
        ]
        lines.append(
            beatsBaseline
                ? "  The model is better than the majority-class baseline (p < 0.05)."
                : "  The model is NOT better than the majority-class baseline (p ≥ 0.05 or lower accuracy).")
        return lines.joined(separator: "\n")
    }
}
