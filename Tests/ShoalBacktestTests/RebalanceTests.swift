import Foundation
import ShoalMarket
import Testing

@testable import ShoalBacktest

struct RebalanceTests {
    /// The synthetic market's bars moved to one bar a day from 2020-01-01, so that calendars mean something.
    static func dailyMarket(bars: Int, assets: Int = 3) throws -> MarketBars {
        var config = SyntheticMarket.Config()
        config.seed = 5
        var (series, _) = try SyntheticMarket(config: config).generate(bars: bars)
        for index in series.indices {
            series[index].timestamps = (0..<bars).map { 1_577_836_800_000 + Int64($0) * 86_400_000 }
        }
        return try MarketBars(Array(series.prefix(assets)))
    }

    static func milliseconds(_ text: String) throws -> Int64 { try #require(CSVBars.parseTime(Substring(text))) }

    /// Periods start on Mondays, the first of a month, of a quarter, of a year (UTC).
    @Test func calendarPeriodsStartWhereTheCalendarSays() throws {
        let sunday = try Self.milliseconds("2024-01-07T23:59:59Z")
        let monday = try Self.milliseconds("2024-01-08T00:00:00Z")
        #expect(CalendarPeriod.weekly.index(ofMilliseconds: sunday) + 1 == CalendarPeriod.weekly.index(ofMilliseconds: monday))
        let january = try Self.milliseconds("2024-01-31T12:00:00Z")
        let february = try Self.milliseconds("2024-02-01T00:00:00Z")
        #expect(
            CalendarPeriod.monthly.index(ofMilliseconds: january) + 1 == CalendarPeriod.monthly.index(ofMilliseconds: february))
        #expect(
            CalendarPeriod.quarterly.index(ofMilliseconds: january) == CalendarPeriod.quarterly.index(ofMilliseconds: february))
        let march = try Self.milliseconds("2024-03-31T00:00:00Z")
        let april = try Self.milliseconds("2024-04-01T00:00:00Z")
        #expect(
            CalendarPeriod.quarterly.index(ofMilliseconds: march) + 1 == CalendarPeriod.quarterly.index(ofMilliseconds: april))
        let before = try Self.milliseconds("1969-12-31T23:00:00Z")
        #expect(CalendarPeriod.yearly.index(ofMilliseconds: before) == 1969)
        #expect(CalendarPeriod.monthly.index(ofMilliseconds: before) == 1969 * 12 + 11)
    }

    /// A monthly calendar trades on the first bar with weights and then on each month's first
    /// bar, and nowhere else.
    @Test func monthlyRebalancingTradesOnEachMonthsFirstBar() throws {
        let market = try Self.dailyMarket(bars: 400)
        var strategy = try Scheduled(try InverseVolatility(window: 20), rule: .calendar(.monthly))
        var config = BacktestConfig()
        config.fill = .close
        let result = try Backtester.runWeights(&strategy, on: market, config: config)
        let months = market.timestamps.map { CalendarPeriod.monthly.index(ofMilliseconds: $0) }
        let expected = [20] + (21..<400).filter { months[$0] != months[$0 - 1] }
        #expect(Array(Set(result.fills.map(\.bar))).sorted() == expected)
        #expect(expected.count == 14, "\(expected.count) rebalances: bar 20, then February 2020 to February 2021")
    }

    /// A band rebalances when a weight has drifted beyond it, by hand: 50/50 in two assets,
    /// one doubles (its weight drifts to 2/3), the other moves 1% (within the band).
    @Test func thresholdRebalancesOnlyBeyondTheBand() throws {
        func market(_ closes: [(Double, Double)]) throws -> MarketBars {
            try MarketBars(
                [
                    BacktesterTests.bars(closes.map { ($0.0, $0.0, $0.0, $0.0) }, symbol: "A"),
                    BacktesterTests.bars(closes.map { ($0.1, $0.1, $0.1, $0.1) }, symbol: "B"),
                ])
        }
        var config = BacktestConfig()
        config.fill = .close
        var calm = try Scheduled(BuyAndHoldEveryBar(), rule: .threshold(0.1))
        let still = try Backtester.runWeights(
            &calm, on: market([(100, 100), (101, 100), (100, 101), (102, 100)]), config: config)
        #expect(Set(still.fills.map(\.bar)) == [0])
        var moved = try Scheduled(BuyAndHoldEveryBar(), rule: .threshold(0.1))
        let result = try Backtester.runWeights(
            &moved, on: market([(100, 100), (101, 100), (200, 100), (200, 100)]), config: config)
        #expect(Set(result.fills.map(\.bar)) == [0, 2])
        let drifted = Scheduled<BuyAndHoldEveryBar>.drifted(
            [0.5, 0.5], from: [100, 100], at: MarketView(bars: try market([(200, 100)] + [(200, 100)]), bar: 0))
        #expect(abs(drifted[0] - 2.0 / 3) < 1e-15 && abs(drifted[1] - 1.0 / 3) < 1e-15)
        #expect(throws: BacktestError.self) { try Scheduled(BuyAndHoldEveryBar(), rule: .threshold(0)) }
    }

    /// Equal weights wanted at every bar.
    struct BuyAndHoldEveryBar: WeightStrategy {
        mutating func weights(at view: MarketView) -> [Double]? {
            [Double](repeating: 1 / Double(view.assets), count: view.assets)
        }
    }

    /// The crossover decided asset by asset over the whole history is the crossover decided bar by bar.
    @Test func crossoverScheduleIsItsBarByBarDecisions() throws {
        let (series, _) = try SyntheticMarket(config: SyntheticMarket.Config()).generate(bars: 5000)
        let market = try MarketBars(series)
        var vectorised = try MovingAverageCrossover(fast: 7, slow: 30, invested: 0.9)
        let vectorisedSchedule = vectorised.schedule(over: market)
        let schedule = try #require(vectorisedSchedule)
        var stepwise = try MovingAverageCrossover(fast: 7, slow: 30, invested: 0.9)
        let decided = try Backtester.barByBar(&stepwise, on: market)
        #expect(schedule == decided)
        #expect(schedule.bars.count > 50)
        #expect(vectorised.holding == stepwise.holding)
    }

    /// Scheduled strategies, a volatility target and a minimum trade give the same numbers on
    /// the event and vectorised paths.
    @Test func rebalancingRulesAgreeOnBothPaths() throws {
        let market = try Self.dailyMarket(bars: 600)
        var config = BacktestConfig()
        config.costs.commissionBps = 5
        config.costs.slippageBps = 2
        config.minimumTrade = 0.002
        for rule in [RebalanceRule.calendar(.weekly), .calendar(.monthly), .threshold(0.02), .always] {
            let base = try VolatilityTargeted(try InverseVolatility(window: 30, invested: 0.95), target: 0.08, window: 30)
            var event = Rebalancing(try Scheduled(base, rule: rule), minimumTrade: 0.002)
            var vector = try Scheduled(base, rule: rule)
            let a = try Backtester.run(&event, on: market, config: config)
            let b = try Backtester.runWeights(&vector, on: market, config: config)
            #expect(a.fills.count == b.fills.count && a.fills.count > 10, "\(rule): \(a.fills.count) and \(b.fills.count)")
            let worst = zip(a.equity, b.equity).map { abs($0 - $1) / $1 }.max() ?? 1
            #expect(worst < 1e-12, "\(rule): \(worst)")
        }
    }

    /// Asks the inner strategy for its weights on quiet bars too (no shortcut).
    struct NoShortcut<Inner: WeightStrategy>: WeightStrategy {
        var inner: Inner
        mutating func weights(at view: MarketView) -> [Double]? { inner.weights(at: view) }
    }

    /// A calendar's quiet bars only keep the inner strategies' state (no weights computed):
    /// the decisions are those of asking them at every bar.
    @Test func quietBarsChangeNoDecision() throws {
        let market = try Self.dailyMarket(bars: 500, assets: 3)
        var fast = try Scheduled(
            try VolatilityTargeted(try InverseVolatility(window: 30), target: 0.1, window: 30), rule: .calendar(.weekly))
        var slow = try Scheduled(
            NoShortcut(inner: try VolatilityTargeted(try InverseVolatility(window: 30), target: 0.1, window: 30)),
            rule: .calendar(.weekly))
        var decisions = 0
        for bar in 0..<500 {
            let view = MarketView(bars: market, bar: bar)
            let a = fast.weights(at: view)
            let b = slow.weights(at: view)
            #expect(a == b, "bar \(bar)")
            decisions += a == nil ? 0 : 1
        }
        #expect(decisions > 50)
    }

    /// Inverse-volatility weights, kept by running sums, are those of each window computed afresh.
    @Test func inverseVolatilityMatchesAFreshComputation() throws {
        let market = try Self.dailyMarket(bars: 300, assets: 4)
        var strategy = try InverseVolatility(window: 25, invested: 0.8)
        for bar in 0..<300 {
            let view = MarketView(bars: market, bar: bar)
            let weights = strategy.weights(at: view)
            guard bar >= 25 else {
                #expect(weights == nil)
                continue
            }
            let inverse = (0..<4).map { asset in
                let returns = (0..<25).map { view.close(asset, ago: $0) / view.close(asset, ago: $0 + 1) - 1 }
                let mean = returns.reduce(0, +) / 25
                return 1 / (returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 24).squareRoot()
            }
            let expected = inverse.map { 0.8 * $0 / inverse.reduce(0, +) }
            let got = try #require(weights)
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-9 * $1 }, "bar \(bar)")
        }
    }

    /// The volatility target scales the weights to the target, and no further than fully invested.
    @Test func volatilityTargetScalesToTheTarget() throws {
        let market = try Self.dailyMarket(bars: 200, assets: 2)
        let view = MarketView(bars: market, bar: 150)
        var plain = BuyAndHoldEveryBar()
        let wanted = plain.weights(at: view)
        let weights = try #require(wanted)
        let returns = (0..<40).map { ago in
            (0..<2).reduce(0.0) { $0 + weights[$1] * (view.close($1, ago: ago) / view.close($1, ago: ago + 1) - 1) }
        }
        let mean = returns.reduce(0, +) / 40
        let volatility = (returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 39 * 252).squareRoot()
        var half = try VolatilityTargeted(BuyAndHoldEveryBar(), target: volatility / 2, window: 40)
        let scaled = half.weights(at: view)
        let halved = try #require(scaled)
        #expect(zip(halved, weights).allSatisfy { abs($0 - $1 / 2) < 1e-12 })
        var high = try VolatilityTargeted(BuyAndHoldEveryBar(), target: volatility * 10, window: 40)
        let capped = high.weights(at: view)
        #expect(capped == weights, "capped at fully invested")
        #expect(throws: BacktestError.self) { try VolatilityTargeted(BuyAndHoldEveryBar(), target: 0) }
    }

    /// The trade list: the shares to the targets, sells first, the expected costs by hand, and
    /// trades under the minimum left out.
    @Test func tradeListCostsByHand() {
        var costs = CostModel()
        costs.commissionBps = 10
        costs.slippageBps = 5
        let list = TradeList(
            weights: [0.5, 0.3, 0.2], positions: [0, 500, 199], prices: [100, 100, 100], equity: 100_000, costs: costs,
            minimumTrade: 0.001)
        #expect(list.trades.map(\.asset) == [1, 0], "the sell first; asset 2 (100 of 100,000) is under the minimum")
        #expect(list.trades[0].quantity == -200 && list.trades[1].quantity == 500)
        let buy = 50_000 * 0.0005 + 500 * 100 * 1.0005 * 0.001
        #expect(abs(list.trades[1].expectedCost - buy) < 1e-9)
        let sell = 20_000 * 0.0005 + 200 * 100 * 0.9995 * 0.001
        #expect(abs(list.trades[0].expectedCost - sell) < 1e-9)
        #expect(abs(list.expectedCost - buy - sell) < 1e-9)
    }
}
