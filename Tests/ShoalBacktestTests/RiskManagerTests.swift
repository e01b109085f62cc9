import Foundation
import ShoalMarket
import Testing

@testable import ShoalBacktest

struct RiskManagerTests {
    typealias Scripted = BacktesterTests.Scripted

    /// Bars at the given closes (open = high = low = close), `perDay` bars a UTC day.
    static func flat(_ closes: [Double], symbol: String = "A", perDay: Int = 1_000) -> MarketData {
        MarketData(
            symbol: symbol,
            bars: closes.enumerated().map {
                Bar(
                    timestamp: Int64($0.offset / perDay) * 86_400_000 + Int64($0.offset % perDay) * 60_000, open: $0.element,
                    high: $0.element, low: $0.element, close: $0.element, volume: 1_000)
            })
    }

    static func run(
        _ limits: RiskLimits, _ market: MarketBars, _ script: [Int: [ShoalBacktest.Order]], short: Bool = false
    ) throws -> (BacktestResult, RiskManager<Scripted>) {
        var manager = try RiskManager(Scripted(script: script), limits: limits)
        var config = BacktestConfig()
        config.initialCash = 100_000
        config.allowShort = short
        let result = try Backtester.run(&manager, on: market, config: config)
        return (result, manager)
    }

    /// Position limits cut a buy to the shares allowed and record the rule and the numbers.
    @Test func positionLimitsResizeOrders() throws {
        let market = try MarketBars([Self.flat([Double](repeating: 100, count: 5))])
        var limits = RiskLimits()
        limits.maxPositionFraction = 0.2
        var (result, manager) = try Self.run(limits, market, [0: [ShoalBacktest.Order(asset: 0, quantity: 1_000)]])
        #expect(result.final.positions[0] == 200)
        let cut = try #require(manager.interventions.first)
        #expect(cut.rule == .positionFraction && cut.action == .resized && cut.requested == 1_000 && cut.allowed == 200)
        #expect(cut.detail.contains("100.00%") && cut.detail.contains("20.00%"), "\(cut.detail)")
        limits.maxPositionShares = 150
        (result, manager) = try Self.run(limits, market, [0: [ShoalBacktest.Order(asset: 0, quantity: 1_000)]])
        #expect(result.final.positions[0] == 150)
        #expect(manager.interventions.map(\.rule) == [.positionShares])
        // Bought at the limit, the position grows with its price past it and is trimmed back.
        limits = RiskLimits()
        limits.maxPositionFraction = 0.2
        (result, manager) = try Self.run(
            limits, try MarketBars([Self.flat([100, 100, 150, 150, 150])]), [0: [ShoalBacktest.Order(asset: 0, quantity: 200)]])
        let trim = try #require(manager.interventions.first)
        #expect(trim.action == .trimmed && trim.bar == 2 && trim.rule == .positionFraction)
        // Equity 110,000 at 150: the limit is 22,000 of it, 146.67 shares.
        #expect(abs(result.final.positions[0] - 0.2 * 110_000 / 150) < 1e-9)
        #expect(manager.interventions.count == 1)
    }

    /// Gross and net exposure limits count the other positions.
    @Test func exposureLimitsCountTheOtherPositions() throws {
        let market = try MarketBars([Self.flat([100, 100, 100, 100]), Self.flat([100, 100, 100, 100], symbol: "B")])
        var limits = RiskLimits()
        limits.maxGrossExposure = 0.5
        let (gross, grossManager) = try Self.run(
            limits, market,
            [0: [ShoalBacktest.Order(asset: 0, quantity: 300)], 1: [ShoalBacktest.Order(asset: 1, quantity: 400)]])
        #expect(gross.final.positions == [300, 200])
        #expect(grossManager.interventions(rule: .grossExposure).map(\.allowed) == [200])
        limits = RiskLimits()
        limits.maxNetExposure = 0.35
        let (net, netManager) = try Self.run(
            limits, market,
            [0: [ShoalBacktest.Order(asset: 0, quantity: 300)], 1: [ShoalBacktest.Order(asset: 1, quantity: -800)]],
            short: true)
        #expect(net.final.positions == [300, -650], "30,000 long and 65,000 short: net -35,000 of 100,000")
        #expect(netManager.interventions(rule: .netExposure, asset: 1).count == 1)
        #expect(netManager.interventions(rule: .grossExposure).isEmpty)
    }

    /// A stop-loss, a take-profit and a trailing stop each close the position on the bar
    /// whose close crosses them.
    @Test func stopsClosePositions() throws {
        let buy = [0: [ShoalBacktest.Order(asset: 0, quantity: 100)]]
        var limits = RiskLimits()
        limits.stopLoss = 0.05
        var (result, manager) = try Self.run(limits, try MarketBars([Self.flat([100, 100, 98, 96, 94.9, 90, 90])]), buy)
        #expect(manager.interventions.map(\.rule) == [.stopLoss] && manager.interventions[0].bar == 4)
        #expect(result.final.positions[0] == 0 && result.fills.last?.bar == 5)
        limits = RiskLimits()
        limits.takeProfit = 0.1
        (result, manager) = try Self.run(limits, try MarketBars([Self.flat([100, 100, 105, 110.5, 112, 113])]), buy)
        #expect(manager.interventions.map(\.rule) == [.takeProfit] && manager.interventions[0].bar == 3)
        limits = RiskLimits()
        limits.trailingStop = 0.1
        (result, manager) = try Self.run(limits, try MarketBars([Self.flat([100, 100, 120, 115, 109, 107.9, 100, 100])]), buy)
        #expect(manager.interventions.map(\.rule) == [.trailingStop] && manager.interventions[0].bar == 5)
        #expect(manager.interventions[0].detail.contains("120.0000"), "\(manager.interventions[0].detail)")
        #expect(result.final.positions[0] == 0)
    }

    /// The daily-loss breaker flattens and refuses new positions for the rest of the day; the
    /// next day trades again.
    @Test func dailyLossBreakerHaltsForTheDay() throws {
        // Three bars a day: day 0 bars 0-2, day 1 bars 3-5, day 2 bars 6-8.
        let market = try MarketBars([Self.flat([100, 100, 100, 100, 90, 90, 90, 90, 90], perDay: 3)])
        var limits = RiskLimits()
        limits.dailyLossLimit = 0.05
        let buy = ShoalBacktest.Order(asset: 0, quantity: 500)
        let (result, manager) = try Self.run(limits, market, [0: [buy], 5: [buy], 6: [buy]])
        #expect(manager.interventions.map(\.rule) == [.dailyLoss, .halted])
        #expect(manager.interventions[0].bar == 4 && manager.interventions[0].action == .closed)
        #expect(manager.interventions[1].bar == 5 && manager.interventions[1].action == .refused)
        #expect(result.fills.map(\.bar) == [1, 5, 7], "bought, flattened, bought again the next day")
        #expect(result.final.positions[0] == 500)
    }

    /// The drawdown breaker flattens and halts for good.
    @Test func drawdownBreakerHaltsForGood() throws {
        let market = try MarketBars([Self.flat([100, 100, 120, 100, 100, 130, 130])])
        var limits = RiskLimits()
        limits.maxDrawdown = 0.1
        let script = [
            0: [ShoalBacktest.Order(asset: 0, quantity: 500)], 4: [ShoalBacktest.Order(asset: 0, quantity: 100)],
            5: [ShoalBacktest.Order(asset: 0, quantity: 100)],
        ]
        let (result, manager) = try Self.run(limits, market, script)
        // Equity 100,000 → 110,000 at 120 → 100,000 at 100: 9.1% down; limit 10%: holds.
        #expect(manager.interventions.isEmpty && result.final.positions[0] == 700)
        let (_, deeper) = try Self.run(limits, try MarketBars([Self.flat([100, 100, 120, 90, 90, 130, 130])]), script)
        #expect(deeper.interventions.map(\.rule) == [.maxDrawdown, .halted, .halted])
        #expect(deeper.interventions[0].bar == 3)
    }

    /// The VaR limit cuts an order to the largest size within it, for both estimates; the
    /// historical estimate is NumPy's percentile of the portfolio's past returns.
    @Test func valueAtRiskLimitResizesToTheLimit() throws {
        let (series, _) = try SyntheticMarket(config: SyntheticMarket.Config()).generate(bars: 400)
        let market = try MarketBars(Array(series.prefix(2)))
        for method in [RiskLimits.ValueAtRiskMethod.historical, .parametric] {
            var limits = RiskLimits()
            limits.valueAtRiskLimit = 0.0005
            limits.valueAtRiskMethod = method
            limits.varWindow = 100
            let price = market.close[0][300]
            let (_, manager) = try Self.run(limits, market, [300: [ShoalBacktest.Order(asset: 0, quantity: 90_000 / price)]])
            let cut = try #require(manager.interventions(rule: .valueAtRisk).first, "\(method)")
            #expect(cut.action == .resized && cut.allowed < cut.requested && cut.allowed > 0)
            let view = MarketView(bars: market, bar: 300)
            let after = manager.valueAtRisk([cut.allowed, 0], equity: 100_000, view: view)
            #expect(after <= 0.0005 && after > 0.0005 * 0.999, "\(method): \(after)")
            if method == .historical {
                let returns = (0..<100).map { ago in
                    cut.allowed * price / 100_000 * (view.close(0, ago: ago) / view.close(0, ago: ago + 1) - 1)
                }.sorted()
                let position = 0.05 * 99
                let low = Int(position)
                let expected = -(returns[low] + (returns[low + 1] - returns[low]) * (position - Double(low)))
                #expect(abs(after - expected) < 1e-15)
            }
        }
    }

    /// Limits that cannot be meant are refused with their name.
    @Test func badLimitsAreRefused() {
        var limits = RiskLimits()
        limits.stopLoss = -0.1
        #expect(throws: BacktestError("risk limit stop_loss must be positive, not -0.1")) {
            try RiskManager(Scripted(script: [:]), limits: limits)
        }
        limits = RiskLimits()
        limits.maxDrawdown = 1.5
        #expect(throws: BacktestError.self) { try limits.validate() }
        limits = RiskLimits()
        limits.varConfidence = 0.3
        #expect(throws: BacktestError.self) { try limits.validate() }
        let file = Data(#"{"stop_loss": 0.05, "value_at_risk_method": "parametric", "var_window": 60}"#.utf8)
        let read = try? JSONDecoder().decode(RiskLimits.self, from: file)
        #expect(
            read?.stopLoss == 0.05 && read?.valueAtRiskMethod == .parametric && read?.varWindow == 60
                && read?.varConfidence == 0.95)
        #expect(throws: BacktestError.self) { try JSONDecoder().decode(RiskLimits.self, from: Data(#"{"stoploss": 0.05}"#.utf8)) }
        #expect(throws: BacktestError.self) {
            try JSONDecoder().decode(RiskLimits.self, from: Data(#"{"max_drawdown": 2}"#.utf8))
        }
    }
}
