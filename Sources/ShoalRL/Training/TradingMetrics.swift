import Foundation

/// How a strategy did over a run of bars: from its per-bar returns (costs included).
public struct TradingMetrics: Sendable, Codable, Equatable {
    public var bars: Int
    public var totalReturn: Double
    /// Mean over standard deviation of per-bar returns, times √(bars per year).
    public var sharpe: Double
    public var maxDrawdown: Double

    public init(returns: [Double], periodsPerYear: Double) {
        bars = returns.count
        var equity = 1.0
        var peak = 1.0
        var drawdown = 0.0
        for value in returns {
            equity *= 1 + value
            peak = max(peak, equity)
            drawdown = max(drawdown, 1 - equity / peak)
        }
        totalReturn = equity - 1
        maxDrawdown = drawdown
        let mean = returns.reduce(0, +) / Double(max(1, returns.count))
        let variance = returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, returns.count - 1))
        sharpe = variance > 1e-20 ? mean / variance.squareRoot() * periodsPerYear.squareRoot() : 0
    }
}

/// Out-of-sample runs of trading strategies on one environment (an episode over its whole span).
public enum OutOfSample {
    /// The per-bar returns of an agent's deterministic policy.
    public static func returns<Base: Environment>(of agent: any Agent, on environment: Base, seed: UInt64 = 0) -> [Double] {
        var environment = environment
        var observation = environment.reset(seed: seed)
        var returns: [Double] = []
        while true {
            let outcome = environment.step(agent.act(observation, deterministic: true))
            returns.append(outcome.info["return"] ?? 0)
            observation = outcome.observation
            if outcome.done { break }
        }
        return returns
    }

    /// The per-bar returns of always sending `action` (buy and hold: a full long position).
    public static func returns<Base: Environment>(holding action: [Float], on environment: Base, seed: UInt64 = 0) -> [Double] {
        var environment = environment
        _ = environment.reset(seed: seed)
        var returns: [Double] = []
        while true {
            let outcome = environment.step(action)
            returns.append(outcome.info["return"] ?? 0)
            if outcome.done { break }
        }
        return returns
    }
}
