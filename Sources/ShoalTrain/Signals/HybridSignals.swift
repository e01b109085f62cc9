import Foundation
import ShoalBacktest
import ShoalMarket
import ShoalTensor

/// Trading signals from a trained hybrid model: at each bar of a span, every asset's last
/// `steps` bars of features (normalised as in training: z-scores fitted on the first
/// `trainFraction` of the asset's bars) go through `passes` Monte Carlo dropout passes; the mean
/// class probabilities give the action (Sell/Hold/Buy) and its confidence, the regression's
/// spread the disagreement. Windows go through the model in batches (windows × passes at once).
public struct HybridSignals {
    public let model: HybridModel
    public let config: TrainingConfig
    /// The model's name and version (or folder), carried by every signal.
    public let modelVersion: String
    public var passes = 20
    /// Windows per batch through the model (each repeated `passes` times).
    public var windowsPerBatch = 16
    public var seed: UInt64 = 0

    public init(model: HybridModel, config: TrainingConfig, modelVersion: String) {
        self.model = model
        self.config = config
        self.modelVersion = modelVersion
    }

    /// Loads what `trading model train --out DIR` wrote: `config.json` and `model.safetensors`.
    /// - Throws: `TrainingError` naming the file that is missing or not what it should be.
    public static func load(folder: String) throws -> HybridSignals {
        let configPath = folder + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw TrainingError("no \(configPath): give the folder trading model train --out wrote")
        }
        let config: TrainingConfig
        do {
            config = try TrainingJSON.decoder().decode(TrainingConfig.self, from: data)
        } catch {
            throw TrainingError("\(configPath) is not a training configuration: \(error)")
        }
        let weights: [String: Tensor]
        do {
            weights = try SafeTensors.read(path: folder + "/model.safetensors").tensors
        } catch {
            throw TrainingError("cannot read \(folder)/model.safetensors: \(error)")
        }
        guard config.model.classes == 3 else {
            throw TrainingError("the model in \(folder) has \(config.model.classes) classes; signals need Sell/Hold/Buy")
        }
        let model = try HybridModel(config: config.model, parameters: weights)
        return HybridSignals(model: model, config: config, modelVersion: (folder as NSString).lastPathComponent)
    }

    /// The signals at every bar of `bars` for every asset of `series` (bars before a full window
    /// of defined features get none). A buy asks for `weight` of the equity, a sell for none
    /// (or `-weight` when `short`).
    /// - Throws: `TrainingError` when the data's features are not the model's.
    public func signals(for series: [MarketData], bars: Range<Int>, weight: Double, short: Bool = false) throws -> [TradingSignal]
    {
        guard model.config.classes == 3 else {
            throw TrainingError("signals need a Sell/Hold/Buy model, not \(model.config.classes) classes")
        }
        guard passes >= 2, windowsPerBatch >= 1 else {
            throw TrainingError("signals need at least 2 passes and 1 window a batch")
        }
        let steps = config.data.steps
        let features = model.config.features
        var result: [TradingSignal] = []
        for data in series {
            let trainingBars = Int(Double(data.close.count) * config.data.trainFraction)
            let inputs = try HybridDataset.modelInputs(data, trainingBars: trainingBars)
            guard inputs.width == features else {
                throw TrainingError("\(data.symbol) has \(inputs.width) features; the model takes \(features)")
            }
            let first = Swift.max(bars.lowerBound, inputs.firstComplete + steps - 1)
            let ends = Array(first..<Swift.min(bars.upperBound, data.close.count))
            var start = 0
            while start < ends.count {
                let chunk = Array(ends[start..<Swift.min(start + windowsPerBatch, ends.count)])
                let predictions = predict(
                    chunk, inputs: inputs.values, width: inputs.width, steps: steps, seed: seed &+ UInt64(chunk[0]))
                for (end, prediction) in zip(chunk, predictions) {
                    let action: TradingSignal.Action = [.sell, .hold, .buy][prediction.predictedClass]
                    result.append(
                        TradingSignal(
                            bar: end, timestamp: data.timestamps[end], instrument: data.symbol, action: action,
                            targetWeight: action == .buy ? weight : action == .sell ? (short ? -weight : 0) : 0,
                            confidence: Double(prediction.confidence),
                            disagreement: Double(prediction.regressionStandardDeviation), modelVersion: modelVersion))
                }
                start += chunk.count
            }
        }
        return result
    }

    /// Monte Carlo predictions of the windows ending at `ends`, in one batch of
    /// `ends.count × passes` windows.
    func predict(_ ends: [Int], inputs: [Float], width: Int, steps: Int, seed: UInt64) -> [MonteCarloPrediction] {
        let features = model.config.features
        let windows = ends.count * passes
        let batch = Tensor(shape: [windows, features, steps]) { pointer in
            for (index, end) in ends.enumerated() {
                let origin = end - steps + 1
                let base = index * passes * features * steps
                // Bar-major inputs to a feature-major window.
                for step in 0..<steps {
                    let row = (origin + step) * width
                    for feature in 0..<features { pointer[base + feature * steps + step] = inputs[row + feature] }
                }
                for pass in 1..<passes {
                    (pointer + base + pass * features * steps).update(from: pointer + base, count: features * steps)
                }
            }
        }
        let tape = Tape(recording: false)
        let output = model.forward(tape.variable(batch), variables: model.variables(on: tape), training: true, seed: seed)
        let probabilities = output.logits.value.softmax().scalars
        let regression = output.regression.value.scalars
        let classes = model.config.classes
        return ends.indices.map { index in
            var mean = [Float](repeating: 0, count: classes)
            var (sum, squares) = (Float(0), Float(0))
            for pass in 0..<passes {
                let row = index * passes + pass
                for c in 0..<classes { mean[c] += probabilities[row * classes + c] / Float(passes) }
                sum += regression[row]
                squares += regression[row] * regression[row]
            }
            let average = sum / Float(passes)
            let spread = (Swift.max(squares - sum * average, 0) / Float(passes - 1)).squareRoot()
            let top = mean.indices.max { mean[$0] < mean[$1] } ?? 1
            return MonteCarloPrediction(
                probabilities: mean, confidence: mean[top], predictedClass: top, regressionMean: average,
                regressionStandardDeviation: spread)
        }
    }
}
