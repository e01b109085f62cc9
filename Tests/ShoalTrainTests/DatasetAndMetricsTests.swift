import Foundation
import ShoalMarket
import ShoalTensor
import Testing

@testable import ShoalTrain

struct DatasetAndMetricsTests {
    @Test func windowsStayInsideTheirSplitAndLaterBarsChangeNothingEarlier() throws {
        var config = DataConfig()
        config.synthetic.symbols = ["AAA", "BBB"]
        config.bars = 1_000
        config.steps = 10
        config.horizon = 4
        let series = try config.load()
        let data = try HybridDataset.build(series, config: config)
        let trainEnd = 700
        let validationEnd = 850
        let width = data.featureNames.count
        for (set, span) in [(data.train, 0..<trainEnd), (data.validation, trainEnd..<validationEnd), (data.test, validationEnd..<1_000)] {
            #expect(set.count > 0)
            for (index, origin) in set.origins.enumerated() {
                let asset = Int(set.assets[index])
                let start = origin - asset * width * 1_000
                #expect(span.contains(start) && span.contains(start + config.steps - 1 + config.horizon))
            }
        }
        // Changing the test span's bars changes no training or validation window: features look
        // back only, and the z-scores are fitted on the training span.
        var changed = series
        for asset in changed.indices {
            for bar in 900..<1_000 {
                changed[asset].close[bar] *= 1.5
                changed[asset].high[bar] *= 1.5
                changed[asset].volume[bar] *= 3
            }
        }
        let other = try HybridDataset.build(changed, config: config)
        #expect(other.returnScale == data.returnScale)
        for set in [\HybridDataset.train, \HybridDataset.validation] {
            let (a, b) = (data[keyPath: set], other[keyPath: set])
            #expect(a.labels == b.labels && a.returns == b.returns)
            #expect(a.batch(0..<a.count).input == b.batch(0..<b.count).input)
        }
        #expect(data.test.batch(0..<data.test.count).input != other.test.batch(0..<other.test.count).input)
        #expect(try data.sha256() != other.sha256())
    }

    @Test func aBatchIsItsWindowsChannelsFirst() throws {
        var config = DataConfig()
        config.synthetic.symbols = ["AAA"]
        config.bars = 400
        config.steps = 5
        let data = try HybridDataset.build(try config.load(), config: config)
        let (input, labels, returns) = data.train.batch([3, 0])
        #expect(input.shape == [2, data.featureNames.count, 5])
        #expect(labels == [Int(data.train.labels[3]), Int(data.train.labels[0])] && returns.shape == [2, 1])
        // Sample 1 is window 0; its feature f at step t is the series at origin + f × bars + t.
        let origin = data.train.origins[0]
        for feature in [0, 4] {
            for step in 0..<5 {
                #expect(
                    input.scalars[(data.featureNames.count + feature) * 5 + step]
                        == data.train.series[origin + feature * 400 + step])
            }
        }
    }

    @Test func metricsMatchTheirDefinitions() {
        // Per class F1 = 2·TP / (predicted + actual): 2/3, 2/4, 4/5 (scikit-learn's macro average 0.6555…).
        let metrics = EvaluationMetrics.of(
            predictions: [0, 2, 2, 2, 1, 1], labels: [0, 1, 2, 2, 1, 0], predictedReturns: [1, 2, 3, 4, 5, 6],
            returns: [1, 2, 3, 4, 6, 5], loss: 0)
        #expect(abs(metrics.accuracy - 4.0 / 6) < 1e-12)
        #expect(abs(metrics.macroF1 - 0.6555555555555556) < 1e-12)
        #expect(abs(metrics.mse - 2.0 / 6) < 1e-9)
        // scipy.stats.spearmanr([1,2,3,4,5,6], [1,2,3,4,6,5]) = 0.942857…
        #expect(abs(metrics.informationCoefficient - 0.9428571428571428) < 1e-12)
        // Ties take their mean rank: spearmanr([1,1,2,3], [1,2,3,4]) = 0.9486832980505138
        #expect(abs(EvaluationMetrics.spearman([1, 1, 2, 3], [1, 2, 3, 4]) - 0.9486832980505138) < 1e-12)
        #expect(EvaluationMetrics.spearman([1, 1, 1], [1, 2, 3]).isNaN)
    }

    @Test func theBinomialTestMatchesScipy() {
        // scipy.stats.binomtest(k, n, p, alternative="greater").pvalue
        #expect(abs(binomialTailProbability(successes: 7, trials: 10, probability: 0.5) - 0.171875) < 1e-12)
        #expect(abs(binomialTailProbability(successes: 60, trials: 100, probability: 0.5) - 0.028443966820490392) < 1e-12)
        #expect(abs(binomialTailProbability(successes: 3_450, trials: 10_000, probability: 0.34) - 0.14768) < 2e-3)
        #expect(binomialTailProbability(successes: 0, trials: 10, probability: 0.3) == 1)
        let report = TestReport(
            metrics: EvaluationMetrics(loss: 1, accuracy: 0.5, macroF1: 0.3, mse: 1, informationCoefficient: 0, count: 100),
            trainCounts: [10, 50, 40], testLabels: Array(repeating: 1, count: 60) + Array(repeating: 2, count: 40), epoch: 1)
        #expect(report.majorityClass == 1 && report.baselineAccuracy == 0.6 && !report.beatsBaseline)
        #expect(report.summary.contains("NOT better"))
    }
}
