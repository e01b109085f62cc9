import ShoalMarket
import ShoalTensor
import Synchronization

/// The hybrid model's features of each bar, computed when an environment first observes the
/// bar, as a live strategy would meet them: the window of the model's inputs ending at the bar
/// goes through the encoder (the fused features at the last step, the classification's
/// confidence and the regression's Monte Carlo uncertainty). Each bar is encoded once and kept.
/// Safe to share between environment copies and threads.
public final class EncodedFeatures: Sendable {
    /// The model's inputs, `[bars × features]` as `MarketFeatures` rows.
    public let inputs: MarketFeatures
    /// Features per bar: the model's fusion size and 2.
    public let width: Int
    /// The first bar with a whole window behind it.
    public let firstComplete: Int
    private let steps: Int
    private let state: Mutex<State>

    private struct State {
        var extractor: FeatureExtractor
        var rows: [Int: [Float]] = [:]
    }

    /// - Parameters:
    ///   - inputs: the model's input features for every bar (what it was trained on, prepared the same way).
    ///   - model: the encoder.
    ///   - passes: Monte Carlo dropout passes for the uncertainty.
    /// - Throws: `EnvironmentError` when the model reads another number of features or the market
    ///   is shorter than one window.
    public init(inputs: MarketFeatures, model: HybridModel, passes: Int = 10) throws {
        let config = model.config
        guard config.features == inputs.width else {
            throw EnvironmentError("the encoder reads \(config.features) features, the market has \(inputs.width)")
        }
        guard passes >= 2 else { throw EnvironmentError("the encoder's uncertainty needs at least 2 Monte Carlo passes") }
        firstComplete = inputs.firstComplete + config.steps - 1
        guard firstComplete < inputs.bars else {
            throw EnvironmentError("the market is shorter than one window of \(config.steps) bars")
        }
        self.inputs = inputs
        steps = config.steps
        // The first bar's features tell the width (the fused features' size and 2).
        let extractor = FeatureExtractor(model: model, capacity: 16, passes: passes)
        let first = Self.encode(inputs, bar: firstComplete, steps: config.steps, with: extractor)
        width = first.count
        state = Mutex(State(extractor: extractor, rows: [firstComplete: first]))
    }

    /// The features of the window of `inputs` ending at `bar`.
    private static func encode(_ inputs: MarketFeatures, bar: Int, steps: Int, with extractor: FeatureExtractor) -> [Float] {
        let extracted = extractor.extract(inputs.window(endingAt: bar, steps: steps))
        var row = extracted.fused
        row.append(extracted.confidence)
        row.append(extracted.uncertainty.isFinite ? extracted.uncertainty : 0)
        return row
    }

    /// Bars encoded so far.
    public var encodedBars: Int { state.withLock { $0.rows.count } }

    /// The features of `bar` (zeros before the first whole window).
    public func row(_ bar: Int) -> [Float] {
        guard bar >= firstComplete, bar < inputs.bars else { return [Float](repeating: 0, count: width) }
        return state.withLock { state in
            if let row = state.rows[bar] { return row }
            var row = Self.encode(inputs, bar: bar, steps: steps, with: state.extractor)
            // A window the model could not take comes back as basic indicators of another width.
            if row.count != width { row = [Float](repeating: 0, count: width) }
            state.rows[bar] = row
            return row
        }
    }
}
