import Foundation

/// The limits a `RiskManager` holds a strategy to; a limit left nil is not checked. Fractions
/// are of the equity at the decision.
public struct RiskLimits: Sendable, Equatable, Codable {
    /// The most shares held in any one asset, long or short.
    public var maxPositionShares: Double?
    /// The most any one position may be worth, as a fraction of the equity.
    public var maxPositionFraction: Double?
    /// The most all positions together may be worth (Σ |value|), as a fraction of the equity.
    public var maxGrossExposure: Double?
    /// The most the long and short positions may be worth net (|Σ value|), as a fraction of the equity.
    public var maxNetExposure: Double?
    /// Close a position that has lost this fraction from its entry price.
    public var stopLoss: Double?
    /// Close a position that has gained this fraction from its entry price.
    public var takeProfit: Double?
    /// Close a position that has fallen this fraction from its best close since entry.
    public var trailingStop: Double?
    /// Flatten and halt for the rest of the (UTC) day when the equity is down this fraction
    /// from the last close of the day before.
    public var dailyLossLimit: Double?
    /// Flatten and halt for good when the equity is this fraction below its peak.
    public var maxDrawdown: Double?
    /// The most the portfolio may lose in one bar at `varConfidence`, as a fraction of the
    /// equity, estimated from the last `varWindow` bars' returns.
    public var valueAtRiskLimit: Double?
    public var valueAtRiskMethod = ValueAtRiskMethod.historical
    public var varConfidence = 0.95
    public var varWindow = 250

    public enum ValueAtRiskMethod: String, Sendable, Equatable, Codable {
        /// The loss at the (1 − confidence) quantile of the portfolio's past returns (NumPy's
        /// linear interpolation, as empyrical's `value_at_risk`).
        case historical
        /// z·σ − μ of the portfolio's past returns, z the normal quantile at the confidence.
        case parametric
    }

    public init() {}

    /// A limits file's keys (snake case).
    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxPositionShares = "max_position_shares"
        case maxPositionFraction = "max_position_fraction"
        case maxGrossExposure = "max_gross_exposure"
        case maxNetExposure = "max_net_exposure"
        case stopLoss = "stop_loss"
        case takeProfit = "take_profit"
        case trailingStop = "trailing_stop"
        case dailyLossLimit = "daily_loss_limit"
        case maxDrawdown = "max_drawdown"
        case valueAtRiskLimit = "value_at_risk_limit"
        case valueAtRiskMethod = "value_at_risk_method"
        case varConfidence = "var_confidence"
        case varWindow = "var_window"
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Every key optional; an unknown key (a misspelt limit would otherwise go unchecked) is an error.
    public init(from decoder: any Decoder) throws {
        let unknown = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).filter {
            CodingKeys(rawValue: $0) == nil
        }
        if let first = unknown.sorted().first {
            throw BacktestError(
                "unknown risk limit '\(first)'; the limits are \(CodingKeys.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        maxPositionShares = try container.decodeIfPresent(Double.self, forKey: .maxPositionShares)
        maxPositionFraction = try container.decodeIfPresent(Double.self, forKey: .maxPositionFraction)
        maxGrossExposure = try container.decodeIfPresent(Double.self, forKey: .maxGrossExposure)
        maxNetExposure = try container.decodeIfPresent(Double.self, forKey: .maxNetExposure)
        stopLoss = try container.decodeIfPresent(Double.self, forKey: .stopLoss)
        takeProfit = try container.decodeIfPresent(Double.self, forKey: .takeProfit)
        trailingStop = try container.decodeIfPresent(Double.self, forKey: .trailingStop)
        dailyLossLimit = try container.decodeIfPresent(Double.self, forKey: .dailyLossLimit)
        maxDrawdown = try container.decodeIfPresent(Double.self, forKey: .maxDrawdown)
        valueAtRiskLimit = try container.decodeIfPresent(Double.self, forKey: .valueAtRiskLimit)
        valueAtRiskMethod = try container.decodeIfPresent(ValueAtRiskMethod.self, forKey: .valueAtRiskMethod) ?? .historical
        varConfidence = try container.decodeIfPresent(Double.self, forKey: .varConfidence) ?? 0.95
        varWindow = try container.decodeIfPresent(Int.self, forKey: .varWindow) ?? 250
        try validate()
    }

    /// - Throws: `BacktestError` naming the first limit that cannot be meant.
    public func validate() throws {
        let fractions: [(String, Double?)] = [
            ("max_position_shares", maxPositionShares), ("max_position_fraction", maxPositionFraction),
            ("max_gross_exposure", maxGrossExposure), ("max_net_exposure", maxNetExposure), ("stop_loss", stopLoss),
            ("take_profit", takeProfit), ("trailing_stop", trailingStop), ("daily_loss_limit", dailyLossLimit),
            ("max_drawdown", maxDrawdown), ("value_at_risk_limit", valueAtRiskLimit),
        ]
        for (name, value) in fractions {
            if let value, !(value > 0) || !value.isFinite {
                throw BacktestError("risk limit \(name) must be positive, not \(value)")
            }
        }
        for (name, value) in [
            ("stop_loss", stopLoss), ("trailing_stop", trailingStop), ("daily_loss_limit", dailyLossLimit),
            ("max_drawdown", maxDrawdown),
        ] {
            if let value, value >= 1 { throw BacktestError("risk limit \(name) is a fraction below 1, not \(value)") }
        }
        guard varConfidence > 0.5, varConfidence < 1 else {
            throw BacktestError("var_confidence must be in (0.5, 1), not \(varConfidence)")
        }
        guard varWindow >= 10 else { throw BacktestError("var_window must be at least 10 bars, not \(varWindow)") }
    }
}

extension Backtester {
    /// A weight strategy backtested under `limits`: through `Rebalancing` and the risk manager,
    /// bar by bar, when there are limits or shorts; on the vectorised path otherwise. The
    /// strategy comes back as the run left it (its counters, its state).
    public static func run<Weights: WeightStrategy>(
        _ weights: inout Weights, limits: RiskLimits?, on bars: MarketBars, config: BacktestConfig
    ) throws -> (result: BacktestResult, interventions: [RiskIntervention]) {
        guard limits != nil || config.allowShort else { return (try runWeights(&weights, on: bars, config: config), []) }
        var manager = try RiskManager(
            Rebalancing(weights, minimumTrade: config.minimumTrade, costs: config.costs), limits: limits ?? RiskLimits())
        defer { weights = manager.inner.inner }
        return (try run(&manager, on: bars, config: config), manager.interventions)
    }
}

/// A rule of the risk manager.
public enum RiskRule: String, Sendable, Equatable, Codable, CaseIterable {
    case positionShares = "position_shares"
    case positionFraction = "position_fraction"
    case grossExposure = "gross_exposure"
    case netExposure = "net_exposure"
    case stopLoss = "stop_loss"
    case takeProfit = "take_profit"
    case trailingStop = "trailing_stop"
    case dailyLoss = "daily_loss"
    case maxDrawdown = "max_drawdown"
    case valueAtRisk = "value_at_risk"
    /// Trading halted by a breaker earlier.
    case halted
}

/// One thing the risk manager did: an order refused or resized, or a position closed.
public struct RiskIntervention: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Equatable, Codable {
        /// The strategy's order was refused.
        case refused
        /// The strategy's order was cut to `allowed` shares.
        case resized
        /// The manager closed the position (a stop, or a breaker flattening).
        case closed
        /// The manager cut a position that had grown past a position limit with its price.
        case trimmed
    }

    public var bar: Int
    public var timestamp: Int64
    public var asset: Int
    public var rule: RiskRule
    public var action: Action
    /// Shares the strategy asked for (for a close: the position).
    public var requested: Double
    /// Shares that went out (a close: minus the position).
    public var allowed: Double
    /// The numbers behind it, as a sentence.
    public var detail: String
}

/// Stands between a strategy and the market: closes positions at their stops, flattens and
/// halts on the loss breakers, and refuses or resizes the strategy's orders to the position,
/// exposure and value-at-risk limits, recording each intervention with its rule and numbers.
/// Checks use the decision bar's close (the orders fill later, at the next open by default).
public struct RiskManager<Inner: Strategy>: Strategy {
    public var inner: Inner
    public let limits: RiskLimits
    /// Everything it did, in order.
    public private(set) var interventions: [RiskIntervention] = []
    var peak = 0.0
    /// The UTC day of the last bar and the equity at that bar's close.
    var day: Int?
    var dayStartEquity = 0.0
    var previousEquity = 0.0
    /// Halted until this day (Int.max: for good).
    var haltedUntilDay: Int?
    /// The best close (worst for a short) since each position was entered.
    var best: [Double] = []

    /// - Throws: `BacktestError` for limits that cannot be meant.
    public init(_ inner: Inner, limits: RiskLimits) throws {
        try limits.validate()
        self.inner = inner
        self.limits = limits
    }

    /// The interventions of one rule (all when nil), on one asset (all when nil), within bars.
    public func interventions(rule: RiskRule? = nil, asset: Int? = nil, bars: ClosedRange<Int>? = nil) -> [RiskIntervention] {
        interventions.filter {
            (rule == nil || $0.rule == rule) && (asset == nil || $0.asset == asset) && (bars?.contains($0.bar) ?? true)
        }
    }

    public mutating func orders(at view: MarketView, portfolio: PortfolioState) -> [Order] {
        let assets = view.assets
        if best.count != assets { best = [Double](repeating: 0, count: assets) }
        let equity = portfolio.equity
        let today = Int((Double(view.timestamp) / 86_400_000).rounded(.down))
        if day != today {
            dayStartEquity = day == nil ? equity : previousEquity
            day = today
        }
        previousEquity = equity
        peak = Swift.max(peak, equity)
        var positions = portfolio.positions
        var orders: [Order] = []

        func close(_ asset: Int, _ rule: RiskRule, _ detail: String) {
            guard positions[asset] != 0 else { return }
            record(view, asset, rule, .closed, positions[asset], -positions[asset], detail)
            orders.append(Order(asset: asset, quantity: -positions[asset]))
            positions[asset] = 0
        }

        // The breakers: flatten everything and halt.
        if let limit = limits.maxDrawdown, peak > 0, 1 - equity / peak >= limit, haltedUntilDay != Int.max {
            for asset in 0..<assets {
                close(
                    asset, .maxDrawdown,
                    Self.format(
                        "equity %.2f is %.2f%% below its peak %.2f (limit %.2f%%)", equity, 100 * (1 - equity / peak), peak,
                        100 * limit))
            }
            haltedUntilDay = Int.max
        }
        if let limit = limits.dailyLossLimit, dayStartEquity > 0, 1 - equity / dayStartEquity >= limit,
            (haltedUntilDay ?? Int.min) <= today
        {
            for asset in 0..<assets {
                close(
                    asset, .dailyLoss,
                    Self.format(
                        "equity %.2f is down %.2f%% today from %.2f (limit %.2f%%)", equity, 100 * (1 - equity / dayStartEquity),
                        dayStartEquity, 100 * limit))
            }
            haltedUntilDay = today + 1
        }

        // The stops, on each open position.
        for asset in 0..<assets where positions[asset] != 0 {
            let price = view.price(asset)
            let entry = portfolio.entryPrices[asset]
            let long = positions[asset] > 0
            if best[asset] == 0 { best[asset] = entry > 0 ? entry : price }
            best[asset] = long ? Swift.max(best[asset], price) : Swift.min(best[asset], price)
            guard entry > 0 else { continue }
            let gain = long ? price / entry - 1 : 1 - price / entry
            if let stop = limits.stopLoss, gain <= -stop {
                close(
                    asset, .stopLoss,
                    Self.format(
                        "price %.4f is %.2f%% against the entry %.4f (stop %.2f%%)", price, -100 * gain, entry, 100 * stop))
            } else if let target = limits.takeProfit, gain >= target {
                close(
                    asset, .takeProfit,
                    Self.format(
                        "price %.4f is %.2f%% beyond the entry %.4f (target %.2f%%)", price, 100 * gain, entry, 100 * target))
            } else if let trailing = limits.trailingStop {
                let fall = long ? 1 - price / best[asset] : price / best[asset] - 1
                if fall >= trailing {
                    close(
                        asset, .trailingStop,
                        Self.format(
                            "price %.4f is %.2f%% off the best close %.4f since entry (trail %.2f%%)", price, 100 * fall,
                            best[asset], 100 * trailing))
                }
            }
        }
        for asset in 0..<assets where positions[asset] == 0 { best[asset] = 0 }

        // Positions grown past a position limit since they were bought: back to the limit.
        for asset in 0..<assets where positions[asset] != 0 && equity > 0 {
            let held = positions[asset]
            let price = view.price(asset)
            var most = limits.maxPositionShares ?? .infinity
            var rule = RiskRule.positionShares
            if let fraction = limits.maxPositionFraction, fraction * equity / price < most {
                most = fraction * equity / price
                rule = .positionFraction
            }
            guard Swift.abs(held) > most * (1 + 1e-9) else { continue }
            let cut = (held > 0 ? most : -most) - held
            record(
                view, asset, rule, .trimmed, held, cut,
                Self.format(
                    "%.4f shares (%.2f%% of the equity) grew past the limit of %.4f", held,
                    100 * Swift.abs(held) * price / equity, most))
            orders.append(Order(asset: asset, quantity: cut))
            positions[asset] += cut
        }

        // The strategy's orders, held to the limits in turn.
        let wanted = inner.orders(at: view, portfolio: portfolio)
        let halted = haltedUntilDay.map { $0 > today } ?? false
        for order in wanted {
            guard order.asset >= 0, order.asset < assets else {
                orders.append(order)  // the backtester refuses it, with its reason
                continue
            }
            let asset = order.asset
            let held = positions[asset]
            let price = view.price(asset)
            var quantity = order.quantity
            let reduces = held != 0 && (quantity < 0) == (held > 0) && Swift.abs(quantity) <= Swift.abs(held)
            if reduces {
                orders.append(order)
                positions[asset] += quantity
                continue
            }
            if halted {
                record(view, asset, .halted, .refused, quantity, 0, "trading is halted by an earlier breaker")
                continue
            }
            func cut(_ allowed: Double, _ rule: RiskRule, _ detail: String) {
                // Never past zero the other way, never beyond what was asked.
                let bounded =
                    quantity > 0 ? Swift.min(quantity, Swift.max(allowed, 0)) : Swift.max(quantity, Swift.min(allowed, 0))
                guard bounded != quantity else { return }
                record(view, asset, rule, Swift.abs(bounded) < 1e-12 ? .refused : .resized, quantity, bounded, detail)
                quantity = bounded
            }
            let direction = quantity > 0 ? 1.0 : -1.0
            if let limit = limits.maxPositionShares {
                cut(
                    direction * limit - held, .positionShares,
                    Self.format("%.4f shares after the order would exceed %.4f", held + quantity, limit))
            }
            if let limit = limits.maxPositionFraction, equity > 0 {
                let most = limit * equity / price
                cut(
                    direction * most - held, .positionFraction,
                    Self.format(
                        "%.2f%% of the equity in one asset would exceed %.2f%%",
                        100 * Swift.abs(held + quantity) * price / equity, 100 * limit))
            }
            if let limit = limits.maxGrossExposure, equity > 0 {
                let others = (0..<assets).reduce(0.0) { $1 == asset ? $0 : $0 + Swift.abs(positions[$1]) * view.price($1) }
                let room = Swift.max(limit * equity - others, 0) / price
                cut(
                    direction * room - held, .grossExposure,
                    Self.format(
                        "gross exposure %.2f%% of the equity would exceed %.2f%%",
                        100 * (others + Swift.abs(held + quantity) * price) / equity, 100 * limit))
            }
            if let limit = limits.maxNetExposure, equity > 0 {
                let others = (0..<assets).reduce(0.0) { $1 == asset ? $0 : $0 + positions[$1] * view.price($1) }
                // |others + (held + q)·price| ≤ limit·equity, on the order's side.
                let bound = (direction * limit * equity - others) / price - held
                if Swift.abs(others + (held + quantity) * price) > limit * equity {
                    cut(
                        bound, .netExposure,
                        Self.format(
                            "net exposure %.2f%% of the equity would exceed %.2f%%",
                            100 * (others + (held + quantity) * price) / equity, 100 * limit))
                }
            }
            if let limit = limits.valueAtRiskLimit, equity > 0, view.bar >= limits.varWindow {
                var trial = positions
                trial[asset] = held + quantity
                let risk = valueAtRisk(trial, equity: equity, view: view)
                if risk > limit {
                    // The largest share of the order within the limit (bisection: the risk grows with it).
                    var (low, high) = (0.0, 1.0)
                    for _ in 0..<40 {
                        let middle = (low + high) / 2
                        trial[asset] = held + quantity * middle
                        if valueAtRisk(trial, equity: equity, view: view) <= limit { low = middle } else { high = middle }
                    }
                    cut(
                        quantity * low, .valueAtRisk,
                        Self.format(
                            "one-bar VaR %.3f%% of the equity (%@, %.0f%%) would exceed %.3f%%", 100 * risk,
                            limits.valueAtRiskMethod.rawValue, 100 * limits.varConfidence, 100 * limit))
                }
            }
            guard quantity != 0 else { continue }
            var sent = order
            sent.quantity = quantity
            orders.append(sent)
            positions[asset] += quantity
        }
        return orders
    }

    /// The one-bar value at risk of holding `positions`, as a fraction of `equity`, from the
    /// last `varWindow` close-to-close returns.
    func valueAtRisk(_ positions: [Double], equity: Double, view: MarketView) -> Double {
        let window = limits.varWindow
        var returns = [Double](repeating: 0, count: window)
        for asset in positions.indices where positions[asset] != 0 {
            let weight = positions[asset] * view.price(asset) / equity
            for ago in 0..<window {
                returns[ago] += weight * (view.close(asset, ago: ago) / view.close(asset, ago: ago + 1) - 1)
            }
        }
        switch limits.valueAtRiskMethod {
        case .historical:
            return -PerformanceMetrics.percentile(returns.sorted(), 100 * (1 - limits.varConfidence))
        case .parametric:
            let mean = returns.reduce(0, +) / Double(window)
            let deviation = (returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(window - 1)).squareRoot()
            return PerformanceMetrics.inverseNormal(limits.varConfidence) * deviation - mean
        }
    }

    mutating func record(
        _ view: MarketView, _ asset: Int, _ rule: RiskRule, _ action: RiskIntervention.Action, _ requested: Double,
        _ allowed: Double,
        _ detail: String
    ) {
        interventions.append(
            RiskIntervention(
                bar: view.bar, timestamp: view.timestamp, asset: asset, rule: rule, action: action, requested: requested,
                allowed: allowed, detail: detail))
    }

    static func format(_ format: String, _ arguments: any CVarArg...) -> String { String(format: format, arguments: arguments) }
}
