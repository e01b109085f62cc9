import Foundation
import ShoalBacktest

/// How a strategy did over a run of bars, from its per-bar returns (costs included): the few
/// figures the RL reports print, taken from the backtester's `PerformanceMetrics` (empyrical's
/// definitions), with the drawdown as a positive fraction. Fewer than two returns, or returns
/// that are not returns, give the total return and zeros.
public struct TradingMetrics: Sendable, Codable, Equatable {
    public var bars: Int
    public var totalReturn: Double
    /// Mean over standard deviation of per-bar returns, times √(bars per year) (0 without variation).
    public var sharpe: Double
    public var maxDrawdown: Double

    public init(returns: [Double], periodsPerYear: Double) {
        bars = returns.count
        var settings = PerformanceMetrics.Settings()
        settings.periodsPerYear = periodsPerYear
        guard let metrics = try? PerformanceMetrics(returns: returns, settings: settings) else {
            (totalReturn, sharpe, maxDrawdown) = (returns.reduce(1) { $0 * (1 + $1) } - 1, 0, 0)
            return
        }
        totalReturn = metrics.cumulativeReturn
        sharpe = metrics.sharpeRatio.isFinite ? metrics.sharpeRatio : 0
        maxDrawdown = -metrics.maxDrawdown
    }
}

/// What a strategy traded over a run: bars with a trade, the sum of its position changes (as
/// fractions of equity) and the costs it paid, over its starting equity.
public struct TradingActivity: Sendable, Codable, Equatable {
    public var bars = 0
    public var trades = 0
    public var turnover = 0.0
    public var costs = 0.0

    public init() {}

    /// What an episode traded, from its steps' `info` (the environment's `position`, `cost`,
    /// `equity` and `return`); costs over the equity before the first step.
    public init(steps infos: [[String: Double]]) {
        var position = 0.0
        var startingEquity: Double?
        for info in infos {
            bars += 1
            if let now = info["position"] {
                let change = abs(now - position)
                turnover += change
                trades += change > 1e-12 ? 1 : 0
                position = now
            }
            if let cost = info["cost"], let equity = info["equity"] {
                // The equity before the first step: its equity after over one plus its return.
                let start = startingEquity ?? equity / (1 + (info["return"] ?? 0))
                startingEquity = start
                costs += cost / max(start, 1e-12)
            }
        }
    }

    /// Position change per bar.
    public var turnoverPerBar: Double { bars > 0 ? turnover / Double(bars) : 0 }
}

/// Out-of-sample runs of trading strategies on one environment (an episode over its whole span).
public enum OutOfSample {
    /// The per-bar returns of an agent's deterministic policy.
    public static func returns<Base: Environment>(of agent: any Agent, on environment: Base, seed: UInt64 = 0) -> [Double] {
        run(of: agent, on: environment, seed: seed).returns
    }

    /// The per-bar returns of always sending `action` (buy and hold: a full long position).
    public static func returns<Base: Environment>(holding action: [Float], on environment: Base, seed: UInt64 = 0) -> [Double] {
        run(on: environment, seed: seed) { _ in action }.returns
    }

    /// An agent's deterministic policy over the episode: its per-bar returns and what it traded.
    public static func run<Base: Environment>(
        of agent: any Agent, on environment: Base, seed: UInt64 = 0
    ) -> (returns: [Double], activity: TradingActivity) {
        run(on: environment, seed: seed) { agent.act($0, deterministic: true) }
    }

    /// A policy over the episode: its per-bar returns and, from the environment's `position`,
    /// `cost` and `equity` info, what it traded.
    public static func run<Base: Environment>(
        on environment: Base, seed: UInt64 = 0, policy: ([Float]) -> [Float]
    ) -> (returns: [Double], activity: TradingActivity) {
        var environment = environment
        var observation = environment.reset(seed: seed)
        var infos: [[String: Double]] = []
        while true {
            let outcome = environment.step(policy(observation))
            infos.append(outcome.info)
            observation = outcome.observation
            if outcome.done { break }
        }
        let returns = infos.map { $0["return"] ?? 0 }
        let activity = TradingActivity(steps: infos)
        return (returns, activity)
    }
}
