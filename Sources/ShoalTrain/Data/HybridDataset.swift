import Foundation
import Shoal
import ShoalMarket
import ShoalWire

/// Where the market data comes from and how it becomes windows.
public struct DataConfig: Codable, Sendable, Equatable {
    /// CSV files of bars, one asset each (`CSVBars`); empty for the synthetic market.
    public var csvFiles: [String] = []
    /// The synthetic market, used when `csvFiles` is empty.
    public var synthetic = SyntheticMarket.Config()
    /// Bars per asset of the synthetic market.
    public var bars = 20_000
    /// Bars per window (the model's `steps`).
    public var steps = 64
    /// The label looks this many bars ahead of a window's last close.
    public var horizon = 5
    /// Buy above +threshold, Sell below −threshold (as a return over `horizon` bars).
    public var threshold = 0.002
    /// A window ends every `stride` bars.
    public var stride = 1
    /// The first share of every asset's bars trains, the next validates, the rest tests.
    public var trainFraction = 0.7
    public var validationFraction = 0.15

    public init() {}

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = DataConfig()
        csvFiles = try values.decodeIfPresent([String].self, forKey: .csvFiles) ?? defaults.csvFiles
        synthetic = try values.decodeIfPresent(SyntheticMarket.Config.self, forKey: .synthetic) ?? defaults.synthetic
        bars = try values.decodeIfPresent(Int.self, forKey: .bars) ?? defaults.bars
        steps = try values.decodeIfPresent(Int.self, forKey: .steps) ?? defaults.steps
        horizon = try values.decodeIfPresent(Int.self, forKey: .horizon) ?? defaults.horizon
        threshold = try values.decodeIfPresent(Double.self, forKey: .threshold) ?? defaults.threshold
        stride = try values.decodeIfPresent(Int.self, forKey: .stride) ?? defaults.stride
        trainFraction = try values.decodeIfPresent(Double.self, forKey: .trainFraction) ?? defaults.trainFraction
        validationFraction =
            try values.decodeIfPresent(Double.self, forKey: .validationFraction) ?? defaults.validationFraction
    }

    /// - Throws: `TrainingError` naming the first bad value.
    public func validate() throws {
        guard steps >= 2 else { throw TrainingError("data.steps must be at least 2, not \(steps)") }
        guard horizon >= 1 else { throw TrainingError("data.horizon must be at least 1, not \(horizon)") }
        guard stride >= 1 else { throw TrainingError("data.stride must be at least 1, not \(stride)") }
        guard threshold >= 0, threshold.isFinite else { throw TrainingError("data.threshold must be 0 or more") }
        guard trainFraction > 0, validationFraction > 0, trainFraction + validationFraction < 1 else {
            throw TrainingError(
                "data.trainFraction (\(trainFraction)) and data.validationFraction (\(validationFraction)) must be above 0 "
                    + "and leave a test share")
        }
        if csvFiles.isEmpty {
            guard bars > 0 else { throw TrainingError("data.bars must be above 0, not \(bars)") }
            try synthetic.validate()
        }
    }

    /// The market this configuration names: the CSV files, or the synthetic market's bars.
    /// - Throws: when a file is missing or malformed, or the configuration is invalid.
    public func load() throws -> [MarketData] {
        try validate()
        guard csvFiles.isEmpty else { return try csvFiles.map { try CSVBars.load(path: $0) } }
        return try SyntheticMarket(config: synthetic).generate(bars: bars).series
    }
}

/// The hybrid model's data: every asset's features, split by time into train, validation and
/// test, z-scored with statistics of the training span only, cut into windows that never cross
/// a split's boundary (their label's horizon included).
public struct HybridDataset: Sendable {
    public var train: WindowSet
    public var validation: WindowSet
    public var test: WindowSet
    /// The model's input channels, in order.
    public var featureNames: [String]
    /// The training split's standard deviation of forward returns (regression targets are divided by it).
    public var returnScale: Double

    /// Features whose values are price levels; they enter as log(value / close) so that a
    /// trending price does not move them out of the range the z-scores were fitted on.
    static let priceLevelPrefixes = ["sma_", "ema_", "bb_upper", "bb_middle", "bb_lower", "vwap_"]

    /// The model's inputs for one asset, every bar: the standard features in stationary form
    /// (price levels as log(level / close), OBV as its change), z-scored with the statistics of
    /// the first `trainingBars` bars only; with the first bar every feature is defined for.
    /// - Throws: `TrainingError` for prices that are not positive or a training span inside the warm-up.
    public static func normalisedFeatures(
        _ data: MarketData, trainingBars: Int
    ) throws -> (table: FeatureTable, firstComplete: Int) {
        guard data.close.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw TrainingError("\(data.symbol): closing prices must be positive and finite")
        }
        var table = FeaturePipeline.standard.transform(data)
        for (index, name) in table.names.enumerated() {
            if priceLevelPrefixes.contains(where: name.hasPrefix) {
                table.columns[index] = zip(table.columns[index], data.close).map { log($0 / $1) }
            } else if name == "obv" {
                let obv = table.columns[index]
                table.columns[index] = obv.indices.map { $0 == 0 || obv[$0 - 1].isNaN ? .nan : obv[$0] - obv[$0 - 1] }
            }
        }
        let first = table.firstCompleteRow
        guard first < trainingBars, trainingBars <= data.close.count else {
            throw TrainingError(
                "\(data.symbol): \(data.close.count) bars leave no training bar after the indicators' warm-up of \(first)")
        }
        return (ZScoreNormalizer.fit(table, rows: first..<trainingBars).apply(table), first)
    }

    /// The model's inputs for one asset laid row by row (`[bars × features]`, bar-major), each
    /// value clipped to ±10 and undefined ones 0, as the windows hold them.
    public static func modelInputs(
        _ data: MarketData, trainingBars: Int
    ) throws -> (values: [Float], width: Int, names: [String], firstComplete: Int) {
        let (table, first) = try normalisedFeatures(data, trainingBars: trainingBars)
        let width = table.names.count
        var values = [Float](repeating: 0, count: data.close.count * width)
        for (column, series) in table.columns.enumerated() {
            for (bar, value) in series.enumerated() where value.isFinite {
                values[bar * width + column] = Float(max(-10, min(10, value)))
            }
        }
        return (values, width, table.names, first)
    }

    /// Builds the dataset from `series` (one entry per asset; every asset is split at the same
    /// fractions of its own bars).
    /// - Throws: `TrainingError` when a split has no window or the series are too short.
    public static func build(_ series: [MarketData], config: DataConfig) throws -> HybridDataset {
        try config.validate()
        guard !series.isEmpty else { throw TrainingError("no market data to train on") }
        let pipeline = FeaturePipeline.standard
        let names = pipeline.transformers.flatMap(\.names)
        let width = names.count
        let steps = config.steps
        let horizon = config.horizon

        struct AssetTable {
            var columns: [[Double]]
            var close: [Double]
            var spans: [Range<Int>]
        }
        var tables: [AssetTable] = []
        for data in series {
            let count = data.close.count
            let trainEnd = Int(Double(count) * config.trainFraction)
            let validationEnd = Int(Double(count) * (config.trainFraction + config.validationFraction))
            let (normalised, first) = try normalisedFeatures(data, trainingBars: trainEnd)
            tables.append(
                AssetTable(
                    columns: normalised.columns, close: data.close,
                    spans: [first..<trainEnd, trainEnd..<validationEnd, validationEnd..<count]))
        }

        // Window ends per split: the window's first bar and its label's bar inside the span.
        func ends(_ span: Range<Int>) -> [Int] {
            let firstEnd = span.lowerBound + steps - 1
            let lastEnd = span.upperBound - 1 - horizon
            guard firstEnd <= lastEnd else { return [] }
            return Array(stride(from: firstEnd, through: lastEnd, by: config.stride))
        }
        var trainReturns: [Double] = []
        for table in tables {
            for end in ends(table.spans[0]) { trainReturns.append(table.close[end + horizon] / table.close[end] - 1) }
        }
        guard trainReturns.count > 1 else {
            throw TrainingError("the training split has no window of \(steps) bars and a \(horizon)-bar horizon")
        }
        let mean = trainReturns.reduce(0, +) / Double(trainReturns.count)
        let deviation = (trainReturns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(trainReturns.count)).squareRoot()
        let scale = deviation > 0 ? deviation : 1

        // Every asset's normalised features, feature-major, kept once for all three splits.
        var series: [Float] = []
        series.reserveCapacity(tables.reduce(0) { $0 + $1.close.count * width })
        var assetOffsets: [Int] = []
        for table in tables {
            assetOffsets.append(series.count)
            for column in table.columns {
                series += column.map { $0.isFinite ? Float(max(-10, min(10, $0))) : 0 }
            }
        }
        let assetBars = tables.map(\.close.count)

        func windows(split: Int, name: String) throws -> WindowSet {
            var assets: [Int32] = []
            var origins: [Int] = []
            var labels: [Int32] = []
            var returns: [Float] = []
            for (asset, table) in tables.enumerated() {
                for end in ends(table.spans[split]) {
                    let forward = table.close[end + horizon] / table.close[end] - 1
                    assets.append(Int32(asset))
                    origins.append(assetOffsets[asset] + end - steps + 1)
                    labels.append(forward > config.threshold ? 2 : forward < -config.threshold ? 0 : 1)
                    returns.append(Float(forward / scale))
                }
            }
            guard !labels.isEmpty else {
                throw TrainingError("the \(name) split has no window of \(steps) bars and a \(horizon)-bar horizon")
            }
            return WindowSet(
                series: series, assetBars: assetBars, assets: assets, origins: origins, labels: labels, returns: returns,
                features: width, steps: steps)
        }
        return HybridDataset(
            train: try windows(split: 0, name: "training"), validation: try windows(split: 1, name: "validation"),
            test: try windows(split: 2, name: "test"), featureNames: names, returnScale: scale)
    }
}

/// A training run's error: what was wrong, said plainly.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The dataset travels (through the object store) with the shared feature series once and each
/// split's windows as indices into it; arrays of scalars encode as their raw memory.
extension HybridDataset: Codable {
    private enum CodingKeys: String, CodingKey {
        case series, assetBars, features, steps, featureNames, returnScale, train, validation, test
    }

    private struct Split: Codable {
        var assets: [Int32]
        var origins: [Int]
        var labels: [Int32]
        var returns: [Float]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(train.series, forKey: .series)
        try container.encode(train.assetBars, forKey: .assetBars)
        try container.encode(train.features, forKey: .features)
        try container.encode(train.steps, forKey: .steps)
        try container.encode(featureNames, forKey: .featureNames)
        try container.encode(returnScale, forKey: .returnScale)
        for (key, set) in [(CodingKeys.train, train), (.validation, validation), (.test, test)] {
            try container.encode(
                Split(assets: set.assets, origins: set.origins, labels: set.labels, returns: set.returns), forKey: key)
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let series = try container.decode([Float].self, forKey: .series)
        let assetBars = try container.decode([Int].self, forKey: .assetBars)
        let features = try container.decode(Int.self, forKey: .features)
        let steps = try container.decode(Int.self, forKey: .steps)
        featureNames = try container.decode([String].self, forKey: .featureNames)
        returnScale = try container.decode(Double.self, forKey: .returnScale)
        guard features == featureNames.count, features >= 1, steps >= 1, assetBars.allSatisfy({ $0 >= 0 && $0 <= series.count }),
            assetBars.reduce(0, +) * features == series.count
        else {
            throw TrainingError("a dataset of \(series.count) values does not hold \(features) features of \(assetBars) bars")
        }
        var offsets: [Int] = []
        var offset = 0
        for bars in assetBars {
            offsets.append(offset)
            offset += bars * features
        }
        func split(_ key: CodingKeys) throws -> WindowSet {
            let split = try container.decode(Split.self, forKey: key)
            let count = split.labels.count
            guard split.assets.count == count, split.origins.count == count, split.returns.count == count else {
                throw TrainingError("the \(key.rawValue) split's columns have different lengths")
            }
            guard split.labels.allSatisfy({ (0...2).contains($0) }) else {
                throw TrainingError("the \(key.rawValue) split has a label outside Sell/Hold/Buy (0…2)")
            }
            // Every window must lie inside its own asset's rows: a malformed object must not read past the series.
            for (asset, origin) in zip(split.assets, split.origins) {
                guard assetBars.indices.contains(Int(asset)) else { throw TrainingError("a window names asset \(asset)") }
                let start = origin - offsets[Int(asset)]
                guard start >= 0, start + steps <= assetBars[Int(asset)] else {
                    throw TrainingError("a window of the \(key.rawValue) split lies outside its asset's bars")
                }
            }
            return WindowSet(
                series: series, assetBars: assetBars, assets: split.assets, origins: split.origins, labels: split.labels,
                returns: split.returns, features: features, steps: steps)
        }
        train = try split(.train)
        validation = try split(.validation)
        test = try split(.test)
    }
}

extension HybridDataset {
    /// The SHA-256 of the dataset as it travels (every split's windows, labels and returns):
    /// the data's identity in a model's lineage and in checkpoints.
    public func sha256() throws -> String {
        ContentDigest.sha256(of: try BinaryEncoder().encode(self))
    }
}
