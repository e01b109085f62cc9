import Foundation
import ShoalMarket

/// Several assets' bars on the same timestamps, asset by asset, with each bar's trailing
/// volatility and average volume (known at its close) for the cost model. A class: the
/// backtester hands a view of it to the strategy at every bar, and a reference costs one
/// retain where a struct of eleven arrays cost eleven.
public final class MarketBars: Sendable {
    public let symbols: [String]
    public let timestamps: [Int64]
    public let open: [[Double]]
    public let high: [[Double]]
    public let low: [[Double]]
    public let close: [[Double]]
    public let volume: [[Double]]
    /// The standard deviation of the close-to-close returns over the window ending at each bar.
    public let volatility: [[Double]]
    /// The mean volume over the window ending at each bar.
    public let averageVolume: [[Double]]

    public var count: Int { timestamps.count }
    public var assets: Int { symbols.count }

    /// - Parameter window: the bars behind volatility and average volume.
    /// - Throws: `BacktestError` for no assets, fewer than two bars, assets on different
    ///   timestamps, or a price that is not positive and finite.
    public init(_ series: [MarketData], window: Int = 20) throws {
        guard let first = series.first else { throw BacktestError("a backtest needs at least one asset") }
        guard first.timestamps.count >= 2 else { throw BacktestError("a backtest needs at least two bars") }
        guard window >= 2 else { throw BacktestError("the cost model's window must be at least 2 bars") }
        for asset in series {
            guard asset.timestamps == first.timestamps else {
                throw BacktestError("\(asset.symbol)'s bars are not on \(first.symbol)'s timestamps: align them first")
            }
            for prices in [asset.open, asset.high, asset.low, asset.close] {
                if let bad = prices.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
                    throw BacktestError("\(asset.symbol) bar \(bad): price \(prices[bad]) is not positive")
                }
            }
        }
        symbols = series.map(\.symbol)
        timestamps = first.timestamps
        open = series.map(\.open)
        high = series.map(\.high)
        low = series.map(\.low)
        close = series.map(\.close)
        volume = series.map(\.volume)
        volatility = series.map { Self.trailingVolatility($0.close, window: window) }
        averageVolume = series.map { Self.trailingMean($0.volume, window: window) }
    }

    /// Running sums over the window: O(bars), not O(bars × window).
    static func trailingVolatility(_ close: [Double], window: Int) -> [Double] {
        var result = [Double](repeating: 0, count: close.count)
        var (sum, squares) = (0.0, 0.0)
        for bar in 1..<close.count {
            let value = close[bar] / close[bar - 1] - 1
            sum += value
            squares += value * value
            if bar > window {
                let old = close[bar - window] / close[bar - window - 1] - 1
                sum -= old
                squares -= old * old
            }
            let n = Double(Swift.min(bar, window))
            guard n >= 2 else { continue }
            result[bar] = (Swift.max(squares - sum * sum / n, 0) / (n - 1)).squareRoot()
        }
        return result
    }

    static func trailingMean(_ values: [Double], window: Int) -> [Double] {
        var result = [Double](repeating: 0, count: values.count)
        var sum = 0.0
        for bar in values.indices {
            sum += values[bar]
            if bar >= window { sum -= values[bar - window] }
            result[bar] = sum / Double(Swift.min(bar + 1, window))
        }
        return result
    }
}

/// What a strategy may see when it decides after bar `bar` closes: every series up to and
/// including that bar, and nothing after (the slices end there).
public struct MarketView: Sendable {
    let bars: MarketBars
    public let bar: Int

    public var symbols: [String] { bars.symbols }
    public var assets: Int { bars.assets }
    public var timestamp: Int64 { bars.timestamps[bar] }
    public func open(_ asset: Int) -> ArraySlice<Double> { bars.open[asset][0...bar] }
    public func high(_ asset: Int) -> ArraySlice<Double> { bars.high[asset][0...bar] }
    public func low(_ asset: Int) -> ArraySlice<Double> { bars.low[asset][0...bar] }
    public func close(_ asset: Int) -> ArraySlice<Double> { bars.close[asset][0...bar] }
    public func volume(_ asset: Int) -> ArraySlice<Double> { bars.volume[asset][0...bar] }
    /// The asset's last close.
    public func price(_ asset: Int) -> Double { bars.close[asset][bar] }
    /// The asset's close `ago` bars before this one (0: this bar's), without making a slice.
    /// - Precondition: 0 ≤ ago ≤ bar.
    public func close(_ asset: Int, ago: Int) -> Double {
        precondition(ago >= 0 && ago <= bar, "a view sees no bar after its own nor before the first")
        return bars.close[asset][bar - ago]
    }
}

/// What is wrong with a backtest's input.
public struct BacktestError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
