import Foundation

/// Named feature columns over the same bars.
public struct FeatureTable: Sendable, Equatable {
    public var timestamps: [Int64]
    public var names: [String]
    /// One column per name, each as long as `timestamps`.
    public var columns: [[Double]]

    public init(timestamps: [Int64], names: [String] = [], columns: [[Double]] = []) {
        self.timestamps = timestamps
        self.names = names
        self.columns = columns
    }

    public func column(_ name: String) -> [Double]? { names.firstIndex(of: name).map { columns[$0] } }

    /// The first row at which every column is defined (after the longest warm-up).
    public var firstCompleteRow: Int {
        (0..<timestamps.count).first { row in columns.allSatisfy { !$0[row].isNaN } } ?? timestamps.count
    }

    /// Writes `timestamp,<names…>` as CSV (NaN as empty fields).
    public func write(to path: String) throws {
        var text = "timestamp," + names.joined(separator: ",") + "\n"
        for row in 0..<timestamps.count {
            text += String(timestamps[row])
            for column in columns {
                text += ","
                if !column[row].isNaN { text += String(column[row]) }
            }
            text += "\n"
        }
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw MarketDataError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// One pluggable step of a feature pipeline: columns computed from one instrument's bars.
public protocol FeatureTransformer: Sendable {
    /// The columns it adds.
    var names: [String] { get }
    func transform(_ data: MarketData) -> [[Double]]
}

/// Price features: SMA, EMA, Bollinger Bands (and %B), RSI, MACD.
public struct PriceFeatures: FeatureTransformer {
    public var smaPeriod = 20
    public var emaPeriod = 12
    public var bollingerPeriod = 20
    public var rsiPeriod = 14
    public init() {}
    public var names: [String] {
        [
            "sma_\(smaPeriod)", "ema_\(emaPeriod)", "bb_upper", "bb_middle", "bb_lower", "bb_percent", "rsi_\(rsiPeriod)", "macd",
            "macd_signal", "macd_hist",
        ]
    }
    public func transform(_ data: MarketData) -> [[Double]] {
        let bands = Indicators.bands(data.close, period: bollingerPeriod, deviations: 2)
        let percent = bands.percent
        let macd = Indicators.macd(data.close)
        // The bands' middle is the same SMA when the periods agree: computed once.
        let sma = smaPeriod == bollingerPeriod ? bands.middle : Indicators.sma(data.close, period: smaPeriod)
        return [
            sma, Indicators.ema(data.close, period: emaPeriod), bands.upper, bands.middle, bands.lower, percent,
            Indicators.rsi(data.close, period: rsiPeriod), macd.line, macd.signal, macd.histogram,
        ]
    }
}

/// Volume features: OBV, VWAP, volume rate of change.
public struct VolumeFeatures: FeatureTransformer {
    public var vwapPeriod = 20
    public var rocPeriod = 14
    public init() {}
    public var names: [String] { ["obv", "vwap_\(vwapPeriod)", "volume_roc_\(rocPeriod)"] }
    public func transform(_ data: MarketData) -> [[Double]] {
        [
            Indicators.obv(close: data.close, volume: data.volume),
            Indicators.vwap(high: data.high, low: data.low, close: data.close, volume: data.volume, period: vwapPeriod),
            Indicators.rateOfChange(data.volume, period: rocPeriod),
        ]
    }
}

/// Volatility features: ATR, the volatility ratio, Garman–Klass.
public struct VolatilityFeatures: FeatureTransformer {
    public var atrPeriod = 14
    public var garmanKlassPeriod = 20
    public init() {}
    public var names: [String] { ["atr_\(atrPeriod)", "volatility_ratio", "garman_klass_\(garmanKlassPeriod)", "log_return"] }
    public func transform(_ data: MarketData) -> [[Double]] {
        let returns = Indicators.logReturns(data.close)
        return [
            Indicators.atr(high: data.high, low: data.low, close: data.close, period: atrPeriod),
            Indicators.volatilityRatio(returns: returns),
            Indicators.garmanKlass(open: data.open, high: data.high, low: data.low, close: data.close, period: garmanKlassPeriod),
            returns,
        ]
    }
}

/// Transformers applied in order, their columns side by side.
public struct FeaturePipeline: Sendable {
    public var transformers: [any FeatureTransformer]

    public init(_ transformers: [any FeatureTransformer]) { self.transformers = transformers }

    /// Price, volume and volatility features with their default periods.
    public static var standard: FeaturePipeline { FeaturePipeline([PriceFeatures(), VolumeFeatures(), VolatilityFeatures()]) }

    public func transform(_ data: MarketData) -> FeatureTable {
        var table = FeatureTable(timestamps: data.timestamps)
        for transformer in transformers {
            table.names += transformer.names
            table.columns += transformer.transform(data)
        }
        return table
    }
}

/// Z-scores with statistics fitted on a training span only, so that later rows never leak
/// into earlier ones.
public struct ZScoreNormalizer: Sendable, Equatable, Codable {
    public var means: [Double]
    public var deviations: [Double]

    /// Fits each column's mean and (population) standard deviation on `rows`, ignoring NaN.
    public static func fit(_ table: FeatureTable, rows: Range<Int>) -> ZScoreNormalizer {
        var means: [Double] = []
        var deviations: [Double] = []
        for column in table.columns {
            let values = column[rows].filter { !$0.isNaN }
            let mean = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
            let variance = values.isEmpty ? 0 : values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
            means.append(mean)
            deviations.append(variance.squareRoot())
        }
        return ZScoreNormalizer(means: means, deviations: deviations)
    }

    /// The table with each column standardised (a constant column becomes 0; NaN stays NaN).
    public func apply(_ table: FeatureTable) -> FeatureTable {
        var result = table
        for (index, column) in table.columns.enumerated() {
            let mean = means[index]
            let deviation = deviations[index]
            result.columns[index] = column.map { $0.isNaN ? .nan : deviation > 0 ? ($0 - mean) / deviation : 0 }
        }
        return result
    }
}

/// Training windows: `batch × features × steps` inputs (channels first, Float32) with labels
/// from the forward return.
public struct Windows: Sendable {
    /// Inputs, sample after sample, each `features × steps`, row-major.
    public var inputs: [Float]
    public var count: Int
    public var features: Int
    public var steps: Int
    /// 0 Sell, 1 Hold, 2 Buy: the forward return below −threshold, within, above +threshold.
    public var labels: [Int32]
    /// The return from the window's last close to the close `horizon` bars later.
    public var forwardReturns: [Float]
    /// The index of each window's last bar.
    public var endRows: [Int]

    /// Windows of `steps` rows ending at every row from the table's first complete row on
    /// (stepping `stride`) that has a close `horizon` bars ahead.
    public static func make(
        _ table: FeatureTable, close: [Double], steps: Int, horizon: Int = 1, threshold: Double = 0.001, stride: Int = 1
    ) throws -> Windows {
        guard steps >= 1, horizon >= 1, stride >= 1 else { throw MarketDataError("windows need steps, horizon and stride >= 1") }
        guard close.count == table.timestamps.count else {
            throw MarketDataError("the close column has \(close.count) rows, the features \(table.timestamps.count)")
        }
        let features = table.columns.count
        let first = table.firstCompleteRow + steps - 1
        var inputs: [Float] = []
        var labels: [Int32] = []
        var returns: [Float] = []
        var ends: [Int] = []
        var end = first
        while end + horizon < close.count {
            let forward = close[end + horizon] / close[end] - 1
            for column in table.columns {
                for row in (end - steps + 1)...end { inputs.append(Float(column[row])) }
            }
            labels.append(forward > threshold ? 2 : forward < -threshold ? 0 : 1)
            returns.append(Float(forward))
            ends.append(end)
            end += stride
        }
        return Windows(
            inputs: inputs, count: labels.count, features: features, steps: steps, labels: labels, forwardReturns: returns,
            endRows: ends)
    }
}
