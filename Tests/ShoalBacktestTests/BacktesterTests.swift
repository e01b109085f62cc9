import Foundation
import ShoalMarket
import Testing

@testable import ShoalBacktest

struct BacktesterTests {
    /// One asset's bars from (open, high, low, close) rows, volume 1,000 each.
    static func bars(_ rows: [(Double, Double, Double, Double)], symbol: String = "A") -> MarketData {
        MarketData(
            symbol: symbol,
            bars: rows.enumerated().map {
                Bar(
                    timestamp: Int64($0.offset) * 60_000, open: $0.element.0, high: $0.element.1, low: $0.element.2,
                    close: $0.element.3, volume: 1000)
            })
    }

    /// Submits the given orders after the given bars.
    struct Scripted: Strategy {
        var script: [Int: [ShoalBacktest.Order]]
        mutating func orders(at view: MarketView, portfolio: PortfolioState) -> [ShoalBacktest.Order] { script[view.bar] ?? [] }
    }

    static let rows: [(Double, Double, Double, Double)] = [
        (100, 101, 99, 100), (102, 104, 101, 103), (103, 105, 98, 99), (98, 100, 95, 96), (97, 110, 96, 108),
    ]

    /// A market buy fills at the next open, plus slippage, with commission in bps and per share,
    /// all as computed by hand.
    @Test func marketFillsWithCostsByHand() throws {
        let market = try MarketBars([Self.bars(Self.rows)])
        var config = BacktestConfig()
        config.initialCash = 100_000
        config.costs.commissionBps = 10
        config.costs.commissionPerShare = 0.01
        config.costs.slippageBps = 5
        var strategy = Scripted(script: [0: [ShoalBacktest.Order(asset: 0, quantity: 100)]])
        let result = try Backtester.run(&strategy, on: market, config: config)
        let fill = try #require(result.fills.first)
        let price = 102 * 1.0005
        #expect(fill.bar == 1 && fill.referencePrice == 102 && abs(fill.price - price) < 1e-12)
        let commission = 100 * price * 0.001 + 100 * 0.01
        #expect(abs(fill.commission - commission) < 1e-9 && abs(fill.slippage - 100 * 102 * 0.0005) < 1e-9)
        #expect(abs(result.equity[1] - (100_000 - 100 * price - commission + 100 * 103)) < 1e-9)
        #expect(result.equity[0] == 100_000 && abs(result.final.positions[0] - 100) < 1e-12)
    }

    /// Limit and stop orders fill where the bar trades through them (at the open when it
    /// opens beyond them); a day order that does not fill expires, a good-till-cancelled one waits.
    @Test func limitAndStopOrdersFillWhereTheBarReachesThem() throws {
        let market = try MarketBars([Self.bars(Self.rows)])
        var strategy = Scripted(script: [
            0: [ShoalBacktest.Order(asset: 0, quantity: 10, kind: .limit(101.5))],  // bar 1 low 101: fills at 101.5
            1: [
                ShoalBacktest.Order(asset: 0, quantity: 5, kind: .limit(97.5)),  // bar 2 low 98: expires
                ShoalBacktest.Order(asset: 0, quantity: 5, kind: .limit(97.5), timeInForce: .goodTillCancelled),  // bar 3 opens 98, low 95
            ],
            3: [ShoalBacktest.Order(asset: 0, quantity: 2, kind: .stop(105))],  // bar 4 high 110: at 105
        ])
        let result = try Backtester.run(&strategy, on: market)
        #expect(result.fills.map(\.referencePrice) == [101.5, 97.5, 105], "\(result.fills)")
        #expect(result.fills.map(\.bar) == [1, 3, 4])
        #expect(
            result.rejections.count == 1 && result.rejections[0].reason == "expired unfilled" && result.rejections[0].bar == 2)
    }

    /// The square-root impact and the volatility-scaled slippage use the volatility and volume
    /// known at the decision.
    @Test func impactScalesWithTheSquareRootOfSize() throws {
        let market = try MarketBars([Self.bars(Self.rows)], window: 3)
        let returns = (1...2).map { Self.rows[$0].3 / Self.rows[$0 - 1].3 - 1 }
        let mean = returns.reduce(0, +) / 2
        let sigma = (returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }).squareRoot()
        #expect(abs(market.volatility[0][2] - sigma) < 1e-12)
        var config = BacktestConfig()
        config.costs.impactCoefficient = 0.5
        config.costs.slippageVolatilityMultiple = 0.1
        config.costs.window = 3
        var strategy = Scripted(script: [2: [ShoalBacktest.Order(asset: 0, quantity: 250)]])
        let result = try Backtester.run(&strategy, on: market, config: config)
        let fill = try #require(result.fills.first)
        let shift = 0.1 * sigma + 0.5 * sigma * (250.0 / 1000).squareRoot()
        #expect(abs(fill.price - 98 * (1 + shift)) < 1e-9, "\(fill.price)")
    }

    /// Selling more than is held is cut to the holding when shorting is off; with shorting on,
    /// a short beyond the margin limit is refused; a buy beyond the cash is cut to it.
    @Test func cashShortsAndMarginAreEnforced() throws {
        let market = try MarketBars([Self.bars(Self.rows)])
        var config = BacktestConfig()
        config.initialCash = 10_000
        var strategy = Scripted(script: [
            0: [ShoalBacktest.Order(asset: 0, quantity: 200)], 1: [ShoalBacktest.Order(asset: 0, quantity: -500)],
        ])
        var result = try Backtester.run(&strategy, on: market, config: config)
        #expect(abs(result.fills[0].quantity - 10_000 / 102) < 1e-9, "a buy beyond the cash is cut to it")
        #expect(abs(result.fills[1].quantity + 10_000 / 102) < 1e-9 && abs(result.final.positions[0]) < 1e-9)
        #expect(result.rejections.map(\.reason).allSatisfy { $0.hasPrefix("cut to") })
        config.allowShort = true
        var short = Scripted(script: [
            0: [ShoalBacktest.Order(asset: 0, quantity: -150)], 1: [ShoalBacktest.Order(asset: 0, quantity: -100)],
        ])
        result = try Backtester.run(&short, on: market, config: config)
        #expect(result.fills.count == 1 && result.fills[0].quantity == -150, "15,300 short on 10,000: within twice the equity")
        #expect(result.rejections.first?.reason == "the short would exceed the margin limit")
    }

    /// Changing bars after bar k changes nothing the strategy did up to bar k.
    @Test func futureBarsChangeNoEarlierDecision() throws {
        let (series, _) = try SyntheticMarket(config: SyntheticMarket.Config()).generate(bars: 800)
        let original = try MarketBars(Array(series.prefix(2)))
        var changed = Array(series.prefix(2))
        for asset in changed.indices {
            for bar in 500..<800 {
                changed[asset].close[bar] *= 1.3
                changed[asset].open[bar] *= 0.7
                changed[asset].high[bar] = max(changed[asset].high[bar], changed[asset].open[bar], changed[asset].close[bar])
                changed[asset].low[bar] = min(changed[asset].low[bar], changed[asset].open[bar], changed[asset].close[bar])
            }
        }
        let altered = try MarketBars(changed)
        var a = Rebalancing(try MovingAverageCrossover(fast: 5, slow: 20))
        var b = Rebalancing(try MovingAverageCrossover(fast: 5, slow: 20))
        let first = try Backtester.run(&a, on: original)
        let second = try Backtester.run(&b, on: altered)
        #expect(first.fills.filter { $0.bar < 500 } == second.fills.filter { $0.bar < 500 })
        #expect(Array(first.equity.prefix(500)) == Array(second.equity.prefix(500)))
        #expect(first.fills.filter { $0.bar < 500 }.count > 4)
    }

    /// The vectorised path gives the event path's numbers on the same weight strategy, with
    /// costs, at the next open and at the close.
    @Test func vectorisedAndEventPathsAgree() throws {
        let (series, _) = try SyntheticMarket(config: SyntheticMarket.Config()).generate(bars: 3000)
        let market = try MarketBars(series)
        for fill in [BacktestConfig.FillTiming.nextOpen, .close] {
            var config = BacktestConfig()
            config.fill = fill
            config.costs.commissionBps = 5
            config.costs.slippageBps = 2
            config.costs.impactCoefficient = 0.1
            var event = Rebalancing(try MovingAverageCrossover(fast: 10, slow: 50))
            var vector = try MovingAverageCrossover(fast: 10, slow: 50)
            let a = try Backtester.run(&event, on: market, config: config)
            let b = try Backtester.runWeights(&vector, on: market, config: config)
            #expect(a.fills.count == b.fills.count && a.fills.count > 20, "\(fill): \(a.fills.count) and \(b.fills.count)")
            let worst = zip(a.equity, b.equity).map { abs($0 - $1) / $1 }.max() ?? 1
            #expect(worst < 1e-12, "\(fill): \(worst)")
        }
    }

    /// Bad market data is refused with the reason.
    @Test func badBarsAreRefused() throws {
        #expect(throws: BacktestError.self) { try MarketBars([]) }
        #expect(throws: BacktestError.self) { try MarketBars([Self.bars([(1, 1, 1, 1)])]) }
        var other = Self.bars(Self.rows, symbol: "B")
        other.timestamps[2] += 1
        #expect(throws: BacktestError.self) { try MarketBars([Self.bars(Self.rows), other]) }
        #expect(throws: BacktestError.self) { try MarketBars([Self.bars([(1, 1, 1, 1), (1, 1, 1, 0)])]) }
    }
}
