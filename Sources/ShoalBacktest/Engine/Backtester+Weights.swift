import Foundation

extension Backtester {
    /// The vectorised path for weight strategies (long only, market orders): the weights of
    /// every bar are computed first — they do not depend on the portfolio — and the fills run
    /// over flat arrays, with no order objects. It gives the event path's numbers for the same
    /// strategy (`run(Rebalancing(strategy), …)`), to rounding.
    /// - Throws: `BacktestError` for a negative weight (shorts need the event path) or a
    ///   configuration that cannot work.
    public static func runWeights<Weights: WeightStrategy>(
        _ strategy: inout Weights, on bars: MarketBars, config: BacktestConfig = BacktestConfig()
    ) throws -> BacktestResult {
        guard config.initialCash > 0 else { throw BacktestError("the initial cash must be positive") }
        let schedule = try strategy.schedule(over: bars) ?? barByBar(&strategy, on: bars)
        let assets = bars.assets
        guard schedule.weights.count == schedule.bars.count * assets else {
            throw BacktestError("\(schedule.weights.count) weights for \(schedule.bars.count) bars of \(assets) assets")
        }
        if let negative = schedule.weights.firstIndex(where: { $0 < 0 }) {
            throw BacktestError(
                "bar \(schedule.bars[negative / assets]): a negative weight for asset \(negative % assets); "
                    + "the vectorised path is long only")
        }
        return trade(changes: schedule.bars, targets: schedule.weights, on: bars, config: config)
    }

    /// The strategy's decisions asked bar by bar.
    static func barByBar<Weights: WeightStrategy>(_ strategy: inout Weights, on bars: MarketBars) throws -> WeightSchedule {
        var schedule = WeightSchedule()
        var weights = [Double](repeating: 0, count: bars.assets)
        for bar in 0..<bars.count where strategy.weights(at: MarketView(bars: bars, bar: bar), into: &weights) {
            guard weights.count == bars.assets else {
                throw BacktestError("bar \(bar): \(weights.count) weights for \(bars.assets) assets")
            }
            schedule.bars.append(bar)
            schedule.weights.append(contentsOf: weights)
        }
        return schedule
    }

    /// The fills of the vectorised path, outside the generic function (so that it is compiled
    /// for these types once, not run through the strategy's generic witnesses).
    static func trade(changes: [Int], targets: [Double], on bars: MarketBars, config: BacktestConfig) -> BacktestResult {
        var book = Book(bars: bars, config: config)
        let assets = bars.assets
        book.fills.reserveCapacity(changes.count * assets)
        let floor = Swift.max(config.minimumTrade, 1e-9)
        var deltas = [Double](repeating: 0, count: assets)
        var pending = false
        var decided = 0
        var next = 0
        var bar = 0
        while bar < bars.count {
            // Up to the next bar that trades or decides, the positions stay: mark the span at once.
            if !pending {
                let end = next < changes.count ? changes[next] : bars.count
                if end > bar {
                    book.markSpan(bar..<end)
                    bar = end
                    continue
                }
            }
            defer { bar += 1 }
            if pending {
                book.trade(deltas, on: bar, decided: decided, atClose: false)
                pending = false
            }
            book.mark(bar)
            guard next < changes.count, changes[next] == bar else { continue }
            let equity = book.equity[bar]
            for asset in 0..<assets {
                let price = bars.close[asset][bar]
                let delta = targets[next * assets + asset] * equity / price - book.positions[asset]
                deltas[asset] = Swift.abs(delta * price) > floor * Swift.max(equity, 1) ? delta : 0
            }
            next += 1
            if config.fill == .close {
                book.trade(deltas, on: bar, decided: bar, atClose: true)
                book.mark(bar)
            } else {
                pending = true
                decided = bar
            }
        }
        return book.result()
    }
}

extension Book {
    /// Market trades of `deltas` shares (0: none) on `bar`, sells first, as `execute` fills
    /// market orders.
    mutating func trade(_ deltas: [Double], on bar: Int, decided: Int, atClose: Bool) {
        for selling in [true, false] {
            for asset in deltas.indices where deltas[asset] != 0 && (deltas[asset] < 0) == selling {
                let reference = atClose ? bars.close[asset][bar] : bars.open[asset][bar]
                fill(Order(asset: asset, quantity: deltas[asset]), reference: reference, bar: bar, decided: decided)
            }
        }
    }
}
