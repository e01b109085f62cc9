import Foundation

/// A strategy that says which weights of its equity it wants in each asset (nil: leave the
/// portfolio as it is); `Rebalancing` turns the weights into market orders.
public protocol WeightStrategy {
    mutating func weights(at view: MarketView) -> [Double]?
    /// The same decision written into `weights` (true: rebalance to them), for strategies that
    /// rebalance often and should not make an array each time; by default `weights(at:)`.
    mutating func weights(at view: MarketView, into weights: inout [Double]) -> Bool
    /// Every bar's decision at once, for the vectorised path (nil: ask bar by bar, the
    /// default). It must decide each bar only from bars up to it, as `weights(at:)` does:
    /// the tests hold the two to the same decisions.
    mutating func schedule(over bars: MarketBars) -> WeightSchedule?
    /// A bar on which nothing can trade (a rebalancing rule's quiet bars): the strategy keeps
    /// its state current. It returns the weights it decided here when no later bar could work
    /// them out again (the default asks `weights(at:)`), nil when it has nothing to say or can
    /// compute its weights at any later bar.
    mutating func advance(past view: MarketView) -> [Double]?
}

extension WeightStrategy {
    public mutating func weights(at view: MarketView, into weights: inout [Double]) -> Bool {
        guard let wanted = self.weights(at: view) else { return false }
        weights = wanted
        return true
    }

    public mutating func schedule(over bars: MarketBars) -> WeightSchedule? { nil }

    public mutating func advance(past view: MarketView) -> [Double]? { weights(at: view) }
}

/// A weight strategy's decisions over a whole history, made asset by asset rather than bar by
/// bar (vectorbt's way): the bars it rebalances on and its weights there.
public struct WeightSchedule: Sendable, Equatable {
    /// The bars it rebalances on, ascending.
    public var bars: [Int]
    /// The weights of each of those bars, one bar's assets after another.
    public var weights: [Double]

    public init(bars: [Int] = [], weights: [Double] = []) {
        self.bars = bars
        self.weights = weights
    }
}

/// Runs a weight strategy with market orders: after each bar it wants to rebalance, each
/// asset's order is the shares its weight of the equity buys at the close, less those held
/// (sells fill first, freeing cash for the buys); trades under `minimumTrade` of the equity are
/// left out (`TradeList`).
public struct Rebalancing<Weights: WeightStrategy>: Strategy {
    public var inner: Weights
    public let minimumTrade: Double
    public let costs: CostModel

    /// - Parameter costs: what the trade list expects to pay (the backtest's own cost model).
    public init(_ inner: Weights, minimumTrade: Double = 0, costs: CostModel = CostModel()) {
        self.inner = inner
        self.minimumTrade = minimumTrade
        self.costs = costs
    }

    public mutating func orders(at view: MarketView, portfolio: PortfolioState) -> [Order] {
        guard let weights = inner.weights(at: view) else { return [] }
        let list = TradeList(
            weights: weights, positions: portfolio.positions, prices: (0..<view.assets).map { view.price($0) },
            equity: portfolio.equity, costs: costs, minimumTrade: minimumTrade)
        return list.trades.map { Order(asset: $0.asset, quantity: $0.quantity) }
    }
}

/// Buys equal weights at the first bar and holds.
public struct BuyAndHold: WeightStrategy {
    /// The share of the equity put in the market.
    public let invested: Double
    var bought = false

    public init(invested: Double = 1) { self.invested = invested }

    public mutating func weights(at view: MarketView) -> [Double]? {
        guard !bought else { return nil }
        bought = true
        return [Double](repeating: invested / Double(view.symbols.count), count: view.symbols.count)
    }
}

/// The simple-moving-average crossover: each asset is held (an equal share of the equity)
/// while its fast average is above its slow one, out of the market otherwise; it rebalances
/// only when an asset crosses.
public struct MovingAverageCrossover: WeightStrategy {
    public let fast: Int
    public let slow: Int
    /// The share of the equity put in the market when every asset is held.
    public let invested: Double
    var fastSums: [Double] = []
    var slowSums: [Double] = []
    var holding: [Bool] = []

    /// - Throws: `BacktestError` unless 1 ≤ fast < slow and 0 < invested ≤ 1.
    public init(fast: Int = 10, slow: Int = 50, invested: Double = 1) throws {
        guard fast >= 1, slow > fast else { throw BacktestError("the crossover needs 1 ≤ fast < slow, not \(fast) and \(slow)") }
        guard invested > 0, invested <= 1 else { throw BacktestError("the invested share must be in (0, 1], not \(invested)") }
        self.fast = fast
        self.slow = slow
        self.invested = invested
    }

    public mutating func weights(at view: MarketView) -> [Double]? {
        var weights: [Double] = []
        return self.weights(at: view, into: &weights) ? weights : nil
    }

    public mutating func weights(at view: MarketView, into weights: inout [Double]) -> Bool {
        let assets = view.assets
        if holding.count != assets {
            fastSums = Array(repeating: 0, count: assets)
            slowSums = Array(repeating: 0, count: assets)
            holding = Array(repeating: false, count: assets)
        }
        let bar = view.bar
        var changed = false
        for asset in 0..<assets {
            // Running sums over what the view allows (no bar after this one).
            let close = view.close(asset, ago: 0)
            // The change first, then one addition: the sums' chain is one add long.
            let fastSum = fastSums[asset] + (bar >= fast ? close - view.close(asset, ago: fast) : close)
            let slowSum = slowSums[asset] + (bar >= slow ? close - view.close(asset, ago: slow) : close)
            fastSums[asset] = fastSum
            slowSums[asset] = slowSum
            guard bar + 1 >= slow else { continue }
            // fast mean > slow mean, without two divisions on every bar.
            let above = fastSum * Double(slow) > slowSum * Double(fast)
            if above != holding[asset] {
                holding[asset] = above
                changed = true
            }
        }
        guard changed else { return false }
        if weights.count != assets { weights = [Double](repeating: 0, count: assets) }
        for asset in 0..<assets { weights[asset] = holding[asset] ? invested / Double(assets) : 0 }
        return true
    }

    /// The same running sums asset by asset over the whole history (each asset's closes in one
    /// pass), then the bars on which any asset crossed.
    public mutating func schedule(over bars: MarketBars) -> WeightSchedule? {
        let (assets, count) = (bars.assets, bars.count)
        // Bit `asset` of held[bar]: the asset is held after that bar.
        var held = [UInt64](repeating: 0, count: count)
        guard assets <= 64 else { return nil }
        held.withUnsafeMutableBufferPointer { held in
            for asset in 0..<assets {
                bars.close[asset].withUnsafeBufferPointer { close in
                    var (fastSum, slowSum) = (0.0, 0.0)
                    let bit = UInt64(1) << UInt64(asset)
                    for bar in 0..<count {
                        fastSum += bar >= fast ? close[bar] - close[bar - fast] : close[bar]
                        slowSum += bar >= slow ? close[bar] - close[bar - slow] : close[bar]
                        if bar + 1 >= slow && fastSum * Double(slow) > slowSum * Double(fast) { held[bar] |= bit }
                    }
                }
            }
        }
        var schedule = WeightSchedule()
        var previous: UInt64 = 0
        for bar in 0..<count where held[bar] != previous {
            previous = held[bar]
            schedule.bars.append(bar)
            for asset in 0..<assets {
                schedule.weights.append(previous & (UInt64(1) << UInt64(asset)) != 0 ? invested / Double(assets) : 0)
            }
        }
        // The state after the last bar, as if it had been decided bar by bar.
        holding = (0..<assets).map { previous & (UInt64(1) << UInt64($0)) != 0 }
        return schedule
    }
}
