import Foundation
import ShoalMarket
import Testing

@testable import ShoalBacktest

struct WalkForwardTests {
    /// Rolling folds keep the training length and move; expanding ones start at bar 0; the
    /// test spans follow one another to the end, a short last one kept.
    @Test func foldsByHand() throws {
        let rolling = try WalkForward(scheme: .rolling, trainBars: 100, testBars: 50).folds(bars: 320)
        #expect(rolling.map(\.train) == [0..<100, 50..<150, 100..<200, 150..<250, 200..<300])
        #expect(rolling.map(\.test) == [100..<150, 150..<200, 200..<250, 250..<300, 300..<320])
        let expanding = try WalkForward(scheme: .expanding, trainBars: 100, testBars: 50).folds(bars: 301)
        #expect(expanding.map(\.train) == [0..<100, 0..<150, 0..<200, 0..<250])
        #expect(expanding.map(\.test) == [100..<150, 150..<200, 200..<250, 250..<300], "a last span of one bar is dropped")
        #expect(throws: BacktestError.self) { try WalkForward(scheme: .rolling, trainBars: 100, testBars: 50).folds(bars: 101) }
        #expect(throws: BacktestError.self) { try WalkForward(scheme: .rolling, trainBars: 1, testBars: 50).folds(bars: 500) }
    }

    /// Each fold's curve starts from the initial cash; stitched, each is scaled to where the
    /// last ended.
    @Test func stitchingChainsTheFoldsReturns() {
        let stitched = WalkForward.stitch([[110, 121], [90, 99]], initial: 100)
        let expected = [110.0, 121, 121 * 0.9, 121 * 0.99]
        #expect(zip(stitched, expected).allSatisfy { abs($0 - $1) < 1e-9 })
    }

    /// A strategy started at bar k is asked at every bar but trades from k, with its latest weights.
    @Test func startingAtHoldsBackEarlierDecisions() throws {
        let (series, _) = try SyntheticMarket(config: SyntheticMarket.Config()).generate(bars: 400)
        let market = try MarketBars(Array(series.prefix(2)))
        var started = StartingAt(try MovingAverageCrossover(fast: 5, slow: 20), start: 150)
        var plain = try MovingAverageCrossover(fast: 5, slow: 20)
        var latest: [Double]?
        for bar in 0..<400 {
            let view = MarketView(bars: market, bar: bar)
            let expected = plain.weights(at: view)
            let got = started.weights(at: view)
            if bar < 150 {
                if let expected { latest = expected }
                #expect(got == nil)
            } else if bar == 150 {
                #expect(got == (expected ?? latest))
            } else {
                #expect(got == expected)
            }
        }
        var config = BacktestConfig()
        config.fill = .close
        var strategy = StartingAt(try MovingAverageCrossover(fast: 5, slow: 20), start: 150)
        let result = try Backtester.runWeights(&strategy, on: market, config: config)
        #expect(
            result.fills.map(\.bar).min() == 150 && Array(result.equity.prefix(150)) == Array(repeating: 1_000_000, count: 150))
    }
}
