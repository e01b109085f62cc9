import ShoalMarket
import ShoalTensor

/// What a trading environment observes of the market: one row of features per bar beside the
/// bar's closing price, with the first bar whose features are complete.
public struct MarketFeatures: Sendable {
    public let prices: [Double]
    /// `[bars × width]`, row-major.
    public let values: [Float]
    public let width: Int
    public let names: [String]
    /// The first bar every feature is defined for (after the indicators' warm-up).
    public let firstComplete: Int

    public var bars: Int { prices.count }

    public init(prices: [Double], values: [Float], width: Int, names: [String], firstComplete: Int) throws {
        guard width > 0, values.count == prices.count * width, names.count == width else {
            throw EnvironmentError("market features: \(values.count) values for \(prices.count) bars of \(width) features")
        }
        guard prices.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw EnvironmentError("market features: prices must be positive")
        }
        guard (0..<max(1, prices.count)).contains(firstComplete) else {
            throw EnvironmentError("market features: no bar has every feature")
        }
        self.prices = prices
        self.values = values
        self.width = width
        self.names = names
        self.firstComplete = firstComplete
    }

    /// Feature row `bar`.
    public func row(_ bar: Int) -> ArraySlice<Float> { values[(bar * width)..<((bar + 1) * width)] }

    /// The `steps` rows ending at `bar` as the hybrid model reads a window: `[features, steps]`,
    /// channels first.
    public func window(endingAt bar: Int, steps: Int) -> Tensor {
        var window = [Float](repeating: 0, count: width * steps)
        for step in 0..<steps {
            for (feature, value) in row(bar - steps + 1 + step).enumerated() { window[feature * steps + step] = value }
        }
        return Tensor(shape: [width, steps], scalars: window)
    }

    /// The basic indicators (the standard feature pipeline: SMA, EMA, Bollinger, RSI, MACD, OBV,
    /// VWAP, volume ROC, ATR, volatility ratio, Garman–Klass, log return), z-scored with means
    /// and deviations fitted on `trainingBars` only (no look-ahead into the rest).
    public static func basic(_ data: MarketData, trainingBars: Int) throws -> MarketFeatures {
        let table = FeaturePipeline.standard.transform(data)
        let first = table.firstCompleteRow
        guard first < trainingBars, trainingBars <= data.count else {
            throw EnvironmentError("market features: \(trainingBars) training bars do not cover the warm-up of \(first)")
        }
        let normalised = ZScoreNormalizer.fit(table, rows: first..<trainingBars).apply(table)
        var values = [Float](repeating: 0, count: data.count * table.names.count)
        for (column, series) in normalised.columns.enumerated() {
            for (bar, value) in series.enumerated() where value.isFinite {
                values[bar * table.names.count + column] = Float(max(-10, min(10, value)))
            }
        }
        return try MarketFeatures(
            prices: data.close, values: values, width: table.names.count, names: table.names, firstComplete: first)
    }

    /// The hybrid model's extracted features (last-step fused features, classification
    /// confidence, regression uncertainty) of every bar's window of `base` features; bars
    /// before the first full window keep `base`'s first complete row's start.
    public static func hybrid(_ base: MarketFeatures, extractor: FeatureExtractor) throws -> MarketFeatures {
        let config = extractor.model.config
        guard config.features == base.width else {
            throw EnvironmentError("the hybrid model reads \(config.features) features, the market has \(base.width)")
        }
        let steps = config.steps
        let first = base.firstComplete + steps - 1
        guard first < base.bars else { throw EnvironmentError("the market is shorter than one window of \(steps) bars") }
        var rows: [[Float]] = Array(repeating: [], count: base.bars)
        var width = 0
        for bar in first..<base.bars {
            let extracted = extractor.extract(base.window(endingAt: bar, steps: steps))
            rows[bar] = extracted.fused + [extracted.confidence, extracted.uncertainty.isFinite ? extracted.uncertainty : 0]
            width = rows[bar].count
        }
        let values = (0..<base.bars).flatMap { rows[$0].isEmpty ? [Float](repeating: 0, count: width) : rows[$0] }
        let names = (0..<(width - 2)).map { "fused_\($0)" } + ["confidence", "uncertainty"]
        return try MarketFeatures(prices: base.prices, values: values, width: width, names: names, firstComplete: first)
    }
}
