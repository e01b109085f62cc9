import Foundation
import ShoalMarket
import ShoalTensor
@testable import ShoalPlot
import Testing

@testable import ShoalRL

/// A market of `prices` with one constant feature.
func flatMarket(_ prices: [Double]) throws -> MarketFeatures {
    try MarketFeatures(
        prices: prices, values: [Float](repeating: 0.5, count: prices.count), width: 1, names: ["f"], firstComplete: 0)
}

struct TradingEnvironmentTests {
    @Test func costsSlippageAndReturnsAreAccountedForExactly() throws {
        var config = TradingEnvironment.Config()
        config.episodeLength = nil
        config.reward = .logReturn
        config.rewardScale = 1
        var environment = try TradingEnvironment(market: try flatMarket([100, 110, 99, 99]), config: config)
        let start = environment.reset(seed: 0)
        #expect(start.count == 1 + 5 && environment.observationSpace.dimension == 6)
        // Long the whole account at 100: pay 0.15% of 100,000, then earn +10%.
        let first = environment.step([1, 0])
        let afterCost = 100_000 * (1 - 0.0015)
        #expect(abs(environment.equity - afterCost * 1.1) < 1e-6)
        #expect(abs(first.reward - log(afterCost * 1.1 / 100_000)) < 1e-9)
        // Flip to short: trade 2× equity, then earn +10% on the fall from 110 to 99.
        let before = environment.equity
        _ = environment.step([-1, 0])
        #expect(abs(environment.equity - before * (1 - 2 * 0.0015) * 1.1) < 1e-6)
        let last = environment.step([-1, 0])
        #expect(last.truncated && !last.terminated, "the span ends")
        #expect(abs((last.info["cost"] ?? 1)) < 1e-12, "holding a position trades nothing")
    }

    @Test func holdTimeLocksAPositionAndDiscreteActionsMapToPositions() throws {
        var config = TradingEnvironment.Config()
        config.episodeLength = nil
        config.maxHoldSteps = 10
        var environment = try TradingEnvironment(market: try flatMarket([Double](repeating: 100, count: 10)), config: config)
        _ = environment.reset(seed: 0)
        _ = environment.step([0.5, 0.2])  // hold 2 bars
        #expect(environment.position == 0.5)
        _ = environment.step([-1, 0])
        #expect(environment.position == 0.5, "locked")
        _ = environment.step([-1, 0])
        #expect(environment.position == 0.5, "still locked")
        _ = environment.step([-1, 0])
        #expect(environment.position == -1, "free again")

        config.actionMode = .discrete
        config.allowShort = false
        var discrete = try TradingEnvironment(market: try flatMarket([Double](repeating: 100, count: 10)), config: config)
        _ = discrete.reset(seed: 0)
        _ = discrete.step([2])
        #expect(discrete.position == 1)
        _ = discrete.step([1])
        #expect(discrete.position == 1, "Hold keeps the position")
        _ = discrete.step([0])
        #expect(discrete.position == 0, "Sell without shorting goes flat")
        #expect(throws: EnvironmentError.self) {
            try TradingEnvironment(market: try flatMarket([100, 101]), span: 0..<2, config: TradingEnvironment.Config())
        }
    }

    @Test func rewardsFollowTheirDefinitions() {
        var logReturn = RewardTracker(kind: .logReturn, window: 20, drawdownPenalty: 0.1, adaptation: 0.1, equity: 100)
        #expect(abs(logReturn.reward(from: 100, to: 110) - log(1.1)) < 1e-12)
        var risk = RewardTracker(kind: .riskAdjusted, window: 20, drawdownPenalty: 0.1, adaptation: 0.1, equity: 100)
        #expect(risk.reward(from: 100, to: 110) == 0, "no Sharpe from one return")
        let second = risk.reward(from: 110, to: 99)
        let returns = [0.1, -0.1]
        let sharpe = (returns.reduce(0, +) / 2) / ((returns.map { $0 * $0 }.reduce(0, +)) / 1).squareRoot()
        #expect(abs(second - (-0.1 * sharpe - 0.1 * (1 - 99.0 / 110))) < 1e-12)
        var differential = RewardTracker(
            kind: .differentialSharpe, window: 20, drawdownPenalty: 0.1, adaptation: 0.5, equity: 100)
        #expect(differential.reward(from: 100, to: 101) == 0, "no variance yet")
        // After one step A = 0.005, B = 0.00005: the next return's first-order Sharpe change.
        let (a, b, r) = (0.005, 0.00005, 0.02)
        let expected = (b * (r - a) - 0.5 * a * (r * r - b)) / pow(b - a * a, 1.5)
        #expect(abs(differential.reward(from: 101, to: 101 * 1.02) - expected) < 1e-6 * abs(expected))
    }

    @Test func thePortfolioRebalancesAtACostAndMetricsAreRight() throws {
        var config = PortfolioEnvironment.Config()
        config.episodeLength = nil
        var environment = try PortfolioEnvironment(
            assets: [try flatMarket([100, 120, 120]), try flatMarket([100, 100, 100])], config: config)
        _ = environment.reset(seed: 0)
        _ = environment.step([1, 1, 0])  // half each
        #expect(abs(environment.equity - 100_000 * (1 - 0.001) * 1.1) < 1e-6, "turnover 1 from cash, +20% on half")
        #expect(abs(environment.weights[0] - 0.6 / 1.1) < 1e-9, "the weights drift with prices")
        #expect(PortfolioEnvironment.weights(from: [0, 0, 0], count: 3) == [0, 0, 1], "no scores: all cash")

        let metrics = TradingMetrics(returns: [0.1, -0.5, 0.2], periodsPerYear: 1)
        #expect(abs(metrics.totalReturn - (1.1 * 0.5 * 1.2 - 1)) < 1e-12 && abs(metrics.maxDrawdown - 0.5) < 1e-12)
    }
}

/// An agent that always sends one action (to test the ensemble).
final class FixedAgent: Agent {
    let name: String
    let action: [Float]
    init(_ name: String, _ action: [Float]) {
        self.name = name
        self.action = action
    }
    var stepsDone = 0
    var episodeReturns: [Double] = []
    func train(steps: Int) { stepsDone += steps }
    func act(_ observations: [Float], deterministic: Bool) -> [Float] { action }
    func checkpoint() -> [String: ShoalTensor.Tensor] { [:] }
    func restore(_ parameters: [String: ShoalTensor.Tensor]) throws {}
}

struct EnsembleTests {
    @Test func thompsonWeightsFavourTheMemberThatEarnsAndAreKept() throws {
        // A rising market: the long member earns, the short one loses.
        let prices = (0..<300).map { 100 * pow(1.001, Double($0)) }
        var config = TradingEnvironment.Config()
        config.episodeLength = nil
        config.reward = .logReturn
        let environment = try TradingEnvironment(market: try flatMarket(prices), config: config)
        let ensemble = try Ensemble<TradingEnvironment>(
            members: [FixedAgent("long", [1, 0]), FixedAgent("short", [-1, 0])], actionSpace: environment.actionSpace)
        let outcomes = ensemble.run(environment, seed: 0)
        #expect(outcomes.count == 299 && ensemble.history.count == 299, "every decision kept")
        #expect(ensemble.history.allSatisfy { abs($0.weights.reduce(0, +) - 1) < 1e-9 })
        let late = ensemble.history.suffix(100).map { $0.weights[0] }.reduce(0, +) / 100
        #expect(late > 0.9, "the long member's late weight is \(late)")
        #expect(ensemble.combine([[1, 0], [-1, 1]], weights: [0.75, 0.25]) == [0.5, 0.25], "a weighted mean of box actions")
        let vote = try Ensemble<Bandit>(members: [FixedAgent("a", [0]), FixedAgent("b", [1])], actionSpace: .discrete(2))
        #expect(vote.combine([[0], [1]], weights: [0.4, 0.6]) == [1], "the discrete action with more weight")
    }

    /// Inside the rebalancing band a change is not traded (no cost); past it, it is.
    @Test func changesInsideTheRebalanceBandAreNotTraded() throws {
        let prices = (0..<50).map { 100 + Double($0) }
        var config = TradingEnvironment.Config()
        config.episodeLength = nil
        config.rebalanceBand = 0.3
        var environment = try TradingEnvironment(market: try flatMarket(prices), config: config)
        _ = environment.reset(seed: 0)
        let small = environment.step([0.2, 0])
        #expect(small.info["position"] == 0 && small.info["cost"] == 0)
        let large = environment.step([0.5, 0])
        #expect(large.info["position"] == 0.5 && (large.info["cost"] ?? 0) > 0)
        let nudge = environment.step([0.6, 0])
        #expect(nudge.info["position"] == 0.5 && nudge.info["cost"] == 0)
        config.rebalanceBand = 3
        #expect(throws: EnvironmentError.self) { try TradingEnvironment(market: try flatMarket(prices), config: config) }
    }

    /// A member left out gets no weight; with every member out the ensemble holds cash, and
    /// the out-of-sample run counts what each strategy traded and paid.
    @Test func membersLeftOutGetNoWeightAndNoneLeftHoldsCash() throws {
        let prices = (0..<300).map { 100 * pow(1.001, Double($0)) }
        var config = TradingEnvironment.Config()
        config.episodeLength = nil
        let environment = try TradingEnvironment(market: try flatMarket(prices), config: config)
        let ensemble = try Ensemble<TradingEnvironment>(
            members: [FixedAgent("long", [1, 0]), FixedAgent("short", [-1, 0])], actionSpace: environment.actionSpace)
        ensemble.leaveOut([1], idle: [0, 0])
        _ = ensemble.run(environment, seed: 0)
        #expect(ensemble.history.allSatisfy { $0.weights == [1, 0] && $0.action == [1, 0] }, "the short member never counts")
        ensemble.leaveOut([0], idle: [0, 0])
        #expect(ensemble.idleAction == [0, 0] && ensemble.act([0], deterministic: true) == [0, 0])
        let held = OutOfSample.run(of: ensemble, on: environment)
        #expect(held.activity.trades == 0 && held.activity.costs == 0 && held.returns.allSatisfy { $0 == 0 }, "cash")
        // Long from the first bar: one trade of a whole position, paying commission and slippage once.
        let long = OutOfSample.run(on: environment) { _ in [1, 0] }
        #expect(long.activity.trades == 1 && abs(long.activity.turnover - 1) < 1e-12 && long.activity.bars == 299)
        #expect(abs(long.activity.costs - (config.transactionCost + config.slippage)) < 1e-9, "\(long.activity.costs)")
    }
}

struct PlotTests {
    @Test func aLinePlotRendersToAValidPNG() throws {
        var plot = LinePlot(title: "test", xLabel: "x", yLabel: "y")
        plot.series.append(.init(name: "line", points: [(0, 0), (1, 2), (2, 1)]))
        plot.references.append((1.5, "goal"))
        let canvas = plot.render()
        #expect(canvas.pixels.contains(31), "the first series' colour was drawn")
        let bytes = try canvas.png()
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(Array(bytes[12..<16]) == Array("IHDR".utf8) && Array(bytes.suffix(8).prefix(4)) == Array("IEND".utf8))
        #expect(LinePlot.ticks(from: 0, to: 475).contains(500) && LinePlot.format(150_000) == "150K")
    }
}
