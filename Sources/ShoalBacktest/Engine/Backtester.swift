import Foundation

/// A strategy the backtester runs: after each bar closes it sees the market up to that bar and
/// its portfolio, and submits orders.
public protocol Strategy {
    mutating func orders(at view: MarketView, portfolio: PortfolioState) -> [Order]
}

/// A portfolio at a bar's close.
public struct PortfolioState: Sendable, Equatable {
    public var cash: Double
    /// Shares by asset (negative: short).
    public var positions: [Double]
    /// Cash plus the positions at the close.
    public var equity: Double
    /// Each position's average entry price (its fills' prices, slippage included; 0 when flat).
    public var entryPrices: [Double]

    public init(cash: Double, positions: [Double], equity: Double, entryPrices: [Double]? = nil) {
        self.cash = cash
        self.positions = positions
        self.equity = equity
        self.entryPrices = entryPrices ?? [Double](repeating: 0, count: positions.count)
    }
}

/// How a backtest runs.
public struct BacktestConfig: Sendable, Equatable, Codable {
    public enum FillTiming: String, Sendable, Codable {
        /// Orders fill on the next bar (market orders at its open): no look-ahead.
        case nextOpen
        /// Orders fill at the close of the bar they were decided on (vectorbt's default).
        case close
    }

    public var initialCash = 1_000_000.0
    public var fill = FillTiming.nextOpen
    public var costs = CostModel()
    public var allowShort = false
    /// Short positions' market value may be at most equity ÷ this (Reg T's 50%: twice equity).
    public var shortMargin = 0.5
    /// The vectorised path leaves out trades under this share of the equity (as
    /// `Rebalancing(minimumTrade:)` does on the event path).
    public var minimumTrade = 0.0

    public init() {}
}

/// A backtest's outcome: the equity at every close, the fills and what was refused.
public struct BacktestResult: Sendable {
    public var equity: [Double]
    public var fills: [Fill]
    public var rejections: [Rejection]
    public var final: PortfolioState
    /// The sum over bars of the traded notional ÷ the equity.
    public var turnover: Double
    /// The mean over bars of the gross exposure ÷ the equity.
    public var exposure: Double

    /// Bar-to-bar simple returns of the equity (the first against the initial cash).
    public func returns(initialCash: Double) -> [Double] { Self.returns(of: equity, initial: initialCash) }

    /// Bar-to-bar simple returns of an equity curve that started from `initial`.
    public static func returns(of equity: [Double], initial: Double) -> [Double] {
        var previous = initial
        return equity.map { value in
            defer { previous = value }
            return value / previous - 1
        }
    }

    public var commissions: Double { fills.reduce(0) { $0 + $1.commission } }
    public var slippage: Double { fills.reduce(0) { $0 + $1.slippage } }
}

/// An event-driven backtester, bar by bar over several assets: market, limit and stop orders
/// with time in force, fills at the next bar's open by default (or the decision bar's close),
/// commission, slippage (fixed or volatility-scaled) and square-root impact, cash and
/// positions, shorts within a margin limit. A strategy only ever sees bars up to its decision.
public enum Backtester {
    /// - Throws: `BacktestError` for a configuration that cannot work.
    public static func run<S: Strategy>(
        _ strategy: inout S, on bars: MarketBars, config: BacktestConfig = BacktestConfig()
    )
        throws -> BacktestResult
    {
        guard config.initialCash > 0 else { throw BacktestError("the initial cash must be positive") }
        guard config.shortMargin > 0 else { throw BacktestError("the short margin must be positive") }
        var book = Book(bars: bars, config: config)
        var pending: [(order: Order, decided: Int)] = []
        for bar in 0..<bars.count {
            if config.fill == .nextOpen, !pending.isEmpty {
                pending = book.execute(pending, on: bar)
            }
            book.mark(bar)
            let view = MarketView(bars: bars, bar: bar)
            let orders = strategy.orders(at: view, portfolio: book.state)
            let submitted = orders.map { (order: $0, decided: bar) }
            if config.fill == .close {
                pending = book.execute(pending + submitted, on: bar, atClose: true)
                book.mark(bar)
            } else {
                pending += submitted
            }
        }
        return book.result()
    }
}

/// The backtester's cash, positions and records.
struct Book {
    let bars: MarketBars
    let config: BacktestConfig
    var cash: Double
    var positions: [Double]
    var entryPrices: [Double]
    var equity: [Double] = []
    var fills: [Fill] = []
    var rejections: [Rejection] = []
    var turnover = 0.0
    /// The gross exposure (the positions' absolute worth) at each close; divided by the equity
    /// once at the end, not on every bar.
    var gross: [Double] = []
    var tradedThisBar = 0.0

    init(bars: MarketBars, config: BacktestConfig) {
        self.bars = bars
        self.config = config
        cash = config.initialCash
        positions = [Double](repeating: 0, count: bars.assets)
        entryPrices = positions
        equity.reserveCapacity(bars.count)
        gross.reserveCapacity(bars.count)
    }

    var state: PortfolioState {
        PortfolioState(cash: cash, positions: positions, equity: equity.last ?? config.initialCash, entryPrices: entryPrices)
    }

    /// The equity at the bar's close (replacing the bar's mark when marked again).
    mutating func mark(_ bar: Int) {
        var value = cash
        var held = 0.0
        for asset in positions.indices {
            let worth = positions[asset] * bars.close[asset][bar]
            value += worth
            held += Swift.abs(worth)
        }
        if equity.count == bar + 1 {
            equity[bar] = value
            gross[bar] = held
        } else {
            equity.append(value)
            gross.append(held)
        }
        if tradedThisBar != 0 {
            if value > 0 { turnover += tradedThisBar / value }
            tradedThisBar = 0
        }
    }

    /// Marks the bars of `span`, on none of which anything trades: the positions stay, so each
    /// asset's worth over the span is one pass over its closes (the sums in `mark`'s order,
    /// so the same numbers).
    mutating func markSpan(_ span: Range<Int>) {
        guard !span.isEmpty else { return }
        precondition(equity.count == span.lowerBound, "spans are marked in order")
        equity.append(contentsOf: repeatElement(cash, count: span.count))
        gross.append(contentsOf: repeatElement(0, count: span.count))
        equity.withUnsafeMutableBufferPointer { values in
            gross.withUnsafeMutableBufferPointer { held in
                for asset in positions.indices {
                    let shares = positions[asset]
                    bars.close[asset].withUnsafeBufferPointer { close in
                        for bar in span {
                            let worth = shares * close[bar]
                            values[bar] += worth
                            held[bar] += Swift.abs(worth)
                        }
                    }
                }
            }
        }
    }

    /// Fills what can fill on `bar` (sells first, freeing cash); returns the orders that stay.
    mutating func execute(
        _ orders: [(order: Order, decided: Int)], on bar: Int, atClose: Bool = false
    ) -> [(
        order: Order, decided: Int
    )] {
        var staying: [(order: Order, decided: Int)] = []
        let ordered = orders.filter { $0.order.quantity < 0 } + orders.filter { $0.order.quantity > 0 }
        for entry in ordered {
            let order = entry.order
            guard bars.assets > order.asset, order.asset >= 0, order.quantity.isFinite else {
                rejections.append(
                    Rejection(bar: bar, order: order, reason: "no asset \(order.asset), or a quantity that is not finite"))
                continue
            }
            guard let reference = referencePrice(order, bar: bar, atClose: atClose) else {
                if order.timeInForce == .goodTillCancelled && bar + 1 < bars.count {
                    staying.append(entry)
                } else {
                    rejections.append(Rejection(bar: bar, order: order, reason: "expired unfilled"))
                }
                continue
            }
            fill(order, reference: reference, bar: bar, decided: entry.decided)
        }
        return staying
    }

    /// The price the order fills at on `bar` before costs, or nil when it does not fill there.
    func referencePrice(_ order: Order, bar: Int, atClose: Bool) -> Double? {
        let asset = order.asset
        let buy = order.quantity > 0
        if atClose {
            let close = bars.close[asset][bar]
            switch order.kind {
            case .market: return close
            case .limit(let limit): return (buy ? close <= limit : close >= limit) ? close : nil
            case .stop(let stop): return (buy ? close >= stop : close <= stop) ? close : nil
            }
        }
        let (open, high, low) = (bars.open[asset][bar], bars.high[asset][bar], bars.low[asset][bar])
        switch order.kind {
        case .market: return open
        case .limit(let limit):
            if buy { return low <= limit ? Swift.min(open, limit) : nil }
            return high >= limit ? Swift.max(open, limit) : nil
        case .stop(let stop):
            if buy { return high >= stop ? Swift.max(open, stop) : nil }
            return low <= stop ? Swift.min(open, stop) : nil
        }
    }

    /// Fills the order at `reference` with the costs known at its decision; a buy larger than
    /// the cash allows is cut to it, a short beyond the margin limit refused.
    mutating func fill(_ order: Order, reference: Double, bar: Int, decided: Int) {
        let asset = order.asset
        var quantity = order.quantity
        let shift = config.costs.priceShift(
            quantity: quantity, volatility: bars.volatility[asset][decided], averageVolume: bars.averageVolume[asset][decided])
        let buy = quantity > 0
        let price = reference * (buy ? 1 + shift : 1 - shift)
        if buy {
            let perShare = price * (1 + config.costs.commissionBps / 10_000) + config.costs.commissionPerShare
            let affordable = Swift.max(cash, 0) / perShare
            if quantity > affordable {
                guard affordable > 1e-9 else {
                    rejections.append(Rejection(bar: bar, order: order, reason: "no cash for it"))
                    return
                }
                rejections.append(
                    Rejection(bar: bar, order: order, reason: "cut to \(affordable) shares: the cash it needed was not there"))
                quantity = affordable
            }
        } else if positions[asset] + quantity < -1e-12 {
            guard config.allowShort else {
                let held = Swift.max(positions[asset], 0)
                guard held > 1e-12 else {
                    rejections.append(Rejection(bar: bar, order: order, reason: "shorting is off"))
                    return
                }
                rejections.append(Rejection(bar: bar, order: order, reason: "cut to the \(held) shares held: shorting is off"))
                quantity = -held
                return fill(
                    Order(asset: asset, quantity: quantity, kind: order.kind), reference: reference, bar: bar, decided: decided)
            }
            var shortValue = 0.0
            var value = cash - quantity * price
            for other in positions.indices {
                let shares = positions[other] + (other == asset ? quantity : 0)
                let mark = other == asset ? price : bars.close[other][Swift.max(bar - 1, 0)]
                value += shares * mark
                if shares < 0 { shortValue -= shares * mark }
            }
            if shortValue * config.shortMargin > value {
                rejections.append(Rejection(bar: bar, order: order, reason: "the short would exceed the margin limit"))
                return
            }
        }
        let commission = config.costs.commission(quantity: quantity, price: price)
        cash -= quantity * price + commission
        let held = positions[asset]
        let now = held + quantity
        if Swift.abs(now) < 1e-12 {
            entryPrices[asset] = 0
        } else if held == 0 || (held > 0) != (now > 0) {
            entryPrices[asset] = price
        } else if Swift.abs(now) > Swift.abs(held) {
            entryPrices[asset] = (entryPrices[asset] * Swift.abs(held) + price * Swift.abs(quantity)) / Swift.abs(now)
        }
        positions[asset] = now
        tradedThisBar += Swift.abs(quantity) * price
        fills.append(
            Fill(
                bar: bar, asset: asset, quantity: quantity, price: price, referencePrice: reference, commission: commission,
                slippage: Swift.abs(quantity) * reference * shift))
    }

    func result() -> BacktestResult {
        BacktestResult(
            equity: equity, fills: fills, rejections: rejections, final: state, turnover: turnover,
            exposure: zip(gross, equity).reduce(0) { $0 + ($1.1 > 0 ? $1.0 / $1.1 : 0) } / Double(Swift.max(gross.count, 1)))
    }
}
