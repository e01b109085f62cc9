import Foundation

/// A strategy that says which weights of its equity it wants in each asset (nil: leave the
/// portfolio as it is); `Rebalancing` turns the weights into market orders.
public protocol WeightStrategy {
    mutating func weights(at view: MarketView) -> [Double]?
}

/// Runs a weight strategy with market orders: after each bar it wants to rebalance, each
/// asset's order is the shares its weight of the equity buys at the close, less those held
/// (sells fill first, freeing cash for the buys).
public struct Rebalancing<Weights: WeightStrategy>: Strategy {
    public var inner: Weights

    public init(_ inner: Weights) { self.inner = inner }

    public mutating func orders(at view: MarketView, portfolio: PortfolioState) -> [Order] {
        guard let weights = inner.weights(at: view) else { return [] }
        return Self.orders(weights: weights, equity: portfolio.equity, positions: portfolio.positions) { view.price($0) }
    }

    static func orders(weights: [Double], equity: Double, positions: [Double], price: (Int) -> Double) -> [Order] {
        var orders: [Order] = []
        for asset in positions.indices where asset < weights.count {
            let delta = weights[asset] * equity / price(asset) - positions[asset]
            if Swift.abs(delta * price(asset)) > 1e-9 * Swift.max(equity, 1) {
                orders.append(Order(asset: asset, quantity: delta))
            }
        }
        return orders
    }
}

/// Buys equal weights at the first bar and holds.
public struct BuyAndHold: WeightStrategy {
    var bought = false
    public init() {}

    public mutating func weights(at view: MarketView) -> [Double]? {
        guard !bought else { return nil }
        bought = true
        return [Double](repeating: 1 / Double(view.symbols.count), count: view.symbols.count)
    }
}

/// The simple-moving-average crossover: each asset is held (an equal share of the equity)
/// while its fast average is above its slow one, out of the market otherwise; it rebalances
/// only when an asset crosses.
public struct MovingAverageCrossover: WeightStrategy {
    public let fast: Int
    public let slow: Int
    var sums: [(fast: Double, slow: Double)] = []
    var holding: [Bool] = []

    /// - Throws: `BacktestError` unless 1 ≤ fast < slow.
    public init(fast: Int = 10, slow: Int = 50) throws {
        guard fast >= 1, slow > fast else { throw BacktestError("the crossover needs 1 ≤ fast < slow, not \(fast) and \(slow)") }
        self.fast = fast
        self.slow = slow
    }

    public mutating func weights(at view: MarketView) -> [Double]? {
        let assets = view.symbols.count
        if sums.isEmpty {
            sums = Array(repeating: (0, 0), count: assets)
            holding = Array(repeating: false, count: assets)
        }
        let bar = view.bar
        var changed = false
        for asset in 0..<assets {
            // Running sums over the slices the view allows (no bar after this one).
            let close = view.close(asset)
            sums[asset].fast += close[bar]
            sums[asset].slow += close[bar]
            if bar >= fast { sums[asset].fast -= close[bar - fast] }
            if bar >= slow { sums[asset].slow -= close[bar - slow] }
            guard bar + 1 >= slow else { continue }
            let above = sums[asset].fast / Double(fast) > sums[asset].slow / Double(slow)
            if above != holding[asset] {
                holding[asset] = above
                changed = true
            }
        }
        guard changed else { return nil }
        return holding.map { $0 ? 1 / Double(assets) : 0 }
    }
}
