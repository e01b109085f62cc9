import Foundation
import ShoalMarket

/// When a weight strategy's targets go to the market.
public enum RebalanceRule: Sendable, Equatable, Codable {
    /// At every decision of the strategy.
    case always
    /// On the first bar of each new calendar period (UTC), with the strategy's latest weights.
    case calendar(CalendarPeriod)
    /// When any asset's weight, drifted with prices since the last rebalance, is more than this
    /// (an absolute share of the equity) from the strategy's latest weights.
    case threshold(Double)
}

/// A calendar period, in UTC.
public enum CalendarPeriod: String, Sendable, Equatable, Codable, CaseIterable {
    case weekly, monthly, quarterly, yearly

    /// A number that changes exactly when a period starts (weeks start on Monday).
    func index(ofMilliseconds time: Int64) -> Int {
        let days = Int((Double(time) / 86_400_000).rounded(.down))
        if self == .weekly { return (days + 3).floorDivided(by: 7) }  // 1970-01-01 was a Thursday
        let (year, month) = Self.civil(days: days)
        switch self {
        case .monthly: return year * 12 + month - 1
        case .quarterly: return year * 4 + (month - 1) / 3
        default: return year
        }
    }

    /// The year and month (1…12) of a day since 1970-01-01.
    static func civil(days: Int) -> (year: Int, month: Int) {
        let date = CSVBars.civilDate(days: days)
        return (date.year, date.month)
    }
}

extension Int {
    fileprivate func floorDivided(by divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}

/// A weight strategy traded by a rebalancing rule: the inner strategy is asked at every bar (so
/// its state stays current) and its latest weights go out when the rule says.
public struct Scheduled<Inner: WeightStrategy>: WeightStrategy {
    public var inner: Inner
    public let rule: RebalanceRule
    var target: [Double]?
    /// The inner strategy's last answer (a buffer it writes into).
    var latest: [Double] = []
    var changed = false
    var period: Int?
    /// The weights as last traded, and the closes then (for the drift).
    var traded: [Double] = []
    var tradedCloses: [Double] = []

    /// - Throws: `BacktestError` for a band that is not positive.
    public init(_ inner: Inner, rule: RebalanceRule) throws {
        if case .threshold(let band) = rule, !(band > 0) {
            throw BacktestError("the rebalancing band must be positive, not \(band)")
        }
        self.inner = inner
        self.rule = rule
    }

    public mutating func weights(at view: MarketView) -> [Double]? {
        var weights: [Double] = []
        return self.weights(at: view, into: &weights) ? weights : nil
    }

    public mutating func weights(at view: MarketView, into weights: inout [Double]) -> Bool {
        if case .calendar(let calendar) = rule, target != nil, !traded.isEmpty {
            // Between calendar dates nothing trades: the inner strategy only keeps its state.
            let current = calendar.index(ofMilliseconds: view.timestamp)
            if current == period {
                if let wanted = inner.advance(past: view) {
                    target = wanted
                    changed = true
                }
                return false
            }
        }
        if inner.weights(at: view, into: &latest) {
            target = latest
            changed = true
        }
        guard let target else { return false }
        let trade: Bool
        switch rule {
        case .always:
            trade = changed
        case .calendar(let calendar):
            let current = calendar.index(ofMilliseconds: view.timestamp)
            trade = traded.isEmpty || current != period
            period = current
        case .threshold(let band):
            trade =
                traded.isEmpty
                || Self.drifted(traded, from: tradedCloses, at: view).enumerated().contains {
                    Swift.abs($0.element - (target.indices.contains($0.offset) ? target[$0.offset] : 0)) > band
                }
        }
        changed = false
        guard trade else { return false }
        traded = target
        tradedCloses = (0..<view.assets).map { view.price($0) }
        weights = target
        return true
    }

    /// Weights set at `closes` and left alone: each asset's share of the equity now (the cash
    /// share, 1 − Σ weights, keeps its value).
    static func drifted(_ weights: [Double], from closes: [Double], at view: MarketView) -> [Double] {
        var grown = weights.indices.map { weights[$0] * view.price($0) / closes[$0] }
        let total = grown.reduce(0, +) + (1 - weights.reduce(0, +))
        guard total > 0 else { return grown }
        for index in grown.indices { grown[index] /= total }
        return grown
    }
}

/// Weights inversely proportional to each asset's volatility (the standard deviation of its
/// last `window` close-to-close returns), summing to `invested`; decided at every bar once
/// `window` returns exist.
public struct InverseVolatility: WeightStrategy {
    public let window: Int
    public let invested: Double

    /// - Throws: `BacktestError` for a window under 2 or a share outside (0, 1].
    public init(window: Int = 63, invested: Double = 1) throws {
        guard window >= 2 else { throw BacktestError("the volatility window must be at least 2 returns, not \(window)") }
        guard invested > 0, invested <= 1 else { throw BacktestError("the invested share must be in (0, 1], not \(invested)") }
        self.window = window
        self.invested = invested
    }

    /// The last `window` returns of each asset (a ring, asset after asset), their sums and sums
    /// of squares, kept as bars arrive (summed afresh every `window` bars, so that rounding does
    /// not build up); `bar` is the last bar seen.
    var ring: [Double] = []
    var sums: [Double] = []
    var squares: [Double] = []
    var bar = -1

    public mutating func weights(at view: MarketView) -> [Double]? {
        var weights: [Double] = []
        return self.weights(at: view, into: &weights) ? weights : nil
    }

    /// Keeps the window's sums current without computing weights (they can be computed at any
    /// later bar from the window then).
    public mutating func advance(past view: MarketView) -> [Double]? {
        update(view)
        return nil
    }

    public mutating func weights(at view: MarketView, into weights: inout [Double]) -> Bool {
        update(view)
        let assets = view.assets
        guard view.bar >= window else { return false }
        if weights.count != assets { weights = [Double](repeating: 0, count: assets) }
        let n = Double(window)
        var total = 0.0
        for asset in 0..<assets {
            let deviation = (Swift.max(squares[asset] - sums[asset] * sums[asset] / n, 0) / (n - 1)).squareRoot()
            weights[asset] = deviation > 0 ? 1 / deviation : 0
            total += weights[asset]
        }
        guard total > 0 else { return false }
        for asset in 0..<assets { weights[asset] *= invested / total }
        return true
    }

    /// The ring, sums and squares brought to `view`'s bar.
    mutating func update(_ view: MarketView) {
        let assets = view.assets
        let slot = view.bar % window
        if sums.count != assets || view.bar != bar + 1 {
            ring = [Double](repeating: 0, count: assets * window)
            sums = [Double](repeating: 0, count: assets)
            squares = sums
            for asset in 0..<assets {
                for ago in 0..<Swift.min(window, view.bar) {
                    ring[asset * window + (view.bar - ago) % window] =
                        view.close(asset, ago: ago) / view.close(asset, ago: ago + 1) - 1
                }
            }
        } else if view.bar >= 1 {
            for asset in 0..<assets {
                ring[asset * window + slot] = view.close(asset, ago: 0) / view.close(asset, ago: 1) - 1
            }
        }
        if sums.count == assets && view.bar != bar + 1 || slot == 0 || view.bar <= window {
            // Summed afresh: at a start, every `window` bars, and while the window fills.
            for asset in 0..<assets {
                var (sum, square) = (0.0, 0.0)
                for value in ring[asset * window..<(asset + 1) * window] {
                    sum += value
                    square += value * value
                }
                sums[asset] = sum
                squares[asset] = square
            }
        } else {
            // The ring's slot held the return leaving the window; it now holds the new one.
            for asset in 0..<assets {
                let value = ring[asset * window + slot]
                let old = view.close(asset, ago: window) / view.close(asset, ago: window + 1) - 1
                sums[asset] += value - old
                squares[asset] += value * value - old * old
            }
        }
        bar = view.bar
    }
}

/// Scales a strategy's weights so that the portfolio's volatility, estimated from the assets'
/// trailing covariance (`window` returns, annualised by `periodsPerYear`), is `target`, at most
/// `maxLeverage` times the weights' own sum of 1 (long only: at most fully invested).
public struct VolatilityTargeted<Inner: WeightStrategy>: WeightStrategy {
    public var inner: Inner
    public let target: Double
    public let window: Int
    public let periodsPerYear: Double
    public let maxLeverage: Double

    /// - Throws: `BacktestError` for a target or leverage that is not positive, or a window
    ///   under 2.
    public init(_ inner: Inner, target: Double, window: Int = 63, periodsPerYear: Double = 252, maxLeverage: Double = 1) throws {
        guard target > 0 else { throw BacktestError("the volatility target must be positive, not \(target)") }
        guard window >= 2 else { throw BacktestError("the volatility window must be at least 2 returns, not \(window)") }
        guard maxLeverage > 0 else { throw BacktestError("the maximum leverage must be positive, not \(maxLeverage)") }
        self.inner = inner
        self.target = target
        self.window = window
        self.periodsPerYear = periodsPerYear
        self.maxLeverage = maxLeverage
    }

    public mutating func weights(at view: MarketView) -> [Double]? {
        inner.weights(at: view).map { scaled($0, at: view) }
    }

    /// Quiet bars pass to the inner strategy; weights it must give here are scaled as usual.
    public mutating func advance(past view: MarketView) -> [Double]? {
        inner.advance(past: view).map { scaled($0, at: view) }
    }

    /// `weights` scaled to the target volatility at `view`'s bar.
    func scaled(_ weights: [Double], at view: MarketView) -> [Double] {
        guard view.bar >= window else { return weights }
        // The portfolio's trailing returns with today's weights: its variance is wᵀΣw.
        var returns = [Double](repeating: 0, count: window)
        for ago in 0..<window {
            for asset in weights.indices where weights[asset] != 0 {
                returns[ago] += weights[asset] * (view.close(asset, ago: ago) / view.close(asset, ago: ago + 1) - 1)
            }
        }
        let mean = returns.reduce(0, +) / Double(window)
        let variance = returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(window - 1)
        let volatility = (variance * periodsPerYear).squareRoot()
        guard volatility > 0 else { return weights }
        let gross = weights.reduce(0) { $0 + Swift.abs($1) }
        let scale = Swift.min(target / volatility, gross > 0 ? maxLeverage / gross : maxLeverage)
        return weights.map { $0 * scale }
    }
}

/// The trades that take a portfolio to target weights, with what each is expected to cost;
/// trades smaller than `minimumTrade` of the equity are left out (a no-trade band: their cost
/// buys too little).
public struct TradeList: Sendable, Equatable {
    public struct Trade: Sendable, Equatable {
        public var asset: Int
        /// Shares: positive buys.
        public var quantity: Double
        /// Shares × price at the decision.
        public var notional: Double
        /// Commission, slippage and impact the cost model expects, in cash.
        public var expectedCost: Double
    }

    /// Sells first (they free the cash the buys need).
    public var trades: [Trade]
    public var expectedCost: Double { trades.reduce(0) { $0 + $1.expectedCost } }

    /// - Parameters:
    ///   - volatility, averageVolume: each asset's, at the decision, for the cost model (zeros
    ///     when unknown).
    public init(
        weights: [Double], positions: [Double], prices: [Double], equity: Double, costs: CostModel = CostModel(),
        volatility: [Double]? = nil, averageVolume: [Double]? = nil, minimumTrade: Double = 0
    ) {
        var sells: [Trade] = []
        var buys: [Trade] = []
        let floor = Swift.max(minimumTrade, 1e-9) * Swift.max(equity, 1)
        for asset in positions.indices where asset < weights.count && asset < prices.count && prices[asset] > 0 {
            let price = prices[asset]
            let quantity = weights[asset] * equity / price - positions[asset]
            let notional = Swift.abs(quantity * price)
            guard notional > floor else { continue }
            let shift = costs.priceShift(
                quantity: quantity, volatility: volatility?[asset] ?? 0, averageVolume: averageVolume?[asset] ?? 0)
            let cost =
                notional * shift + costs.commission(quantity: quantity, price: price * (quantity > 0 ? 1 + shift : 1 - shift))
            let trade = Trade(asset: asset, quantity: quantity, notional: notional, expectedCost: cost)
            if quantity < 0 { sells.append(trade) } else { buys.append(trade) }
        }
        trades = sells + buys
    }
}
