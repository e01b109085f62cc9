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
        var targets = [[Double]?](repeating: nil, count: bars.count)
        for bar in 0..<bars.count {
            if let weights = strategy.weights(at: MarketView(bars: bars, bar: bar)) {
                if let negative = weights.firstIndex(where: { $0 < 0 }) {
                    throw BacktestError("bar \(bar): a negative weight for asset \(negative); the vectorised path is long only")
                }
                targets[bar] = weights
            }
        }
        var book = Book(bars: bars, config: config)
        var pending: [Double]?
        var decided = 0
        for bar in 0..<bars.count {
            if config.fill == .nextOpen, let deltas = pending {
                book.trade(deltas, on: bar, decided: decided, atClose: false)
                pending = nil
            }
            book.mark(bar)
            guard let weights = targets[bar] else { continue }
            let equity = book.equity[bar]
            var deltas = [Double](repeating: 0, count: bars.assets)
            for asset in 0..<Swift.min(bars.assets, weights.count) {
                let price = bars.close[asset][bar]
                let delta = weights[asset] * equity / price - book.positions[asset]
                if Swift.abs(delta * price) > 1e-9 * Swift.max(equity, 1) { deltas[asset] = delta }
            }
            if config.fill == .close {
                book.trade(deltas, on: bar, decided: bar, atClose: true)
                book.mark(bar)
            } else {
                pending = deltas
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
