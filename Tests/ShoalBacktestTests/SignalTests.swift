import Foundation
import ShoalMarket
import Testing

@testable import ShoalBacktest

struct SignalTests {
    static func signal(
        _ bar: Int, _ instrument: String, _ action: TradingSignal.Action, weight: Double = 0.5, confidence: Double = 0.9,
        disagreement: Double = 0.1
    ) -> TradingSignal {
        TradingSignal(
            bar: bar, timestamp: Int64(bar) * 60_000, instrument: instrument, action: action,
            targetWeight: action == .buy ? weight : 0, confidence: confidence, disagreement: disagreement, modelVersion: "m:1")
    }

    /// A buy moves the asset to its weight, a hold keeps it, a sell clears it; signals under the
    /// confidence gate or over the disagreement ceiling are not acted on.
    @Test func signalsBecomeWeightsThroughTheGate() throws {
        let market = try MarketBars([
            BacktesterTests.bars(BacktesterTests.rows, symbol: "A"), BacktesterTests.bars(BacktesterTests.rows, symbol: "B"),
        ])
        var strategy = try SignalStrategy(
            [
                Self.signal(0, "A", .buy), Self.signal(0, "B", .buy, confidence: 0.4),  // B under the gate
                Self.signal(1, "A", .hold), Self.signal(2, "B", .buy, disagreement: 3),  // B over the ceiling
                Self.signal(3, "A", .sell), Self.signal(3, "B", .buy),
            ], symbols: ["A", "B"], minimumConfidence: 0.5, maximumDisagreement: 1)
        let decided = (0..<5).map { strategy.weights(at: MarketView(bars: market, bar: $0)) }
        #expect(decided[0] == [0.5, 0])
        #expect(decided[1] == nil && decided[2] == nil && decided[4] == nil)
        #expect(decided[3] == [0, 0.5])
        #expect(strategy.gated == 2 && strategy.acted == 4)
        // Acted on after the bar it was computed for: the fill is the next bar's.
        var traded = Rebalancing(try SignalStrategy([Self.signal(2, "A", .buy)], symbols: ["A", "B"]))
        let result = try Backtester.run(&traded, on: market)
        #expect(result.fills.map(\.bar) == [3])
    }

    @Test func badSignalsAreRefused() {
        #expect(throws: BacktestError.self) { try SignalStrategy([Self.signal(0, "Z", .buy)], symbols: ["A"]) }
        #expect(throws: BacktestError.self) {
            try SignalStrategy([Self.signal(0, "A", .buy), Self.signal(0, "A", .sell)], symbols: ["A"])
        }
        #expect(throws: BacktestError.self) { try SignalStrategy([], symbols: ["A"], minimumConfidence: 1.5) }
    }

    /// Signals that knew the next bar pass the validation after costs; the same signals turned
    /// around lose to cash and do not.
    @Test func validationAfterCostsDecidesWhetherASourceTrades() throws {
        let (series, _) = try SyntheticMarket(config: SyntheticMarket.Config()).generate(bars: 600)
        let market = try MarketBars(Array(series.prefix(2)))
        var config = BacktestConfig()
        config.costs.commissionBps = 5
        config.costs.slippageBps = 2
        func signals(inverted: Bool) -> [TradingSignal] {
            (0..<599).flatMap { bar in
                (0..<2).map { asset in
                    // The next bar's move, open to open (what a next-open fill earns).
                    let up = market.open[asset][min(bar + 2, 599)] > market.open[asset][bar + 1]
                    return Self.signal(bar, market.symbols[asset], up != inverted ? .buy : .sell)
                }
            }
        }
        let good = try SignalValidation(
            try SignalStrategy(signals(inverted: false), symbols: market.symbols), on: market, config: config)
        let bad = try SignalValidation(
            try SignalStrategy(signals(inverted: true), symbols: market.symbols), on: market, config: config)
        #expect(good.passed && good.totalReturn > 0.005 && good.fills > 100, "\(good.totalReturn) with \(good.fills) fills")
        #expect(!bad.passed && bad.totalReturn < 0, "\(bad.totalReturn)")
        let none = try SignalValidation(try SignalStrategy([], symbols: market.symbols), on: market, config: config)
        #expect(!none.passed && none.totalReturn == 0, "no trade is not better than cash")
    }
}
