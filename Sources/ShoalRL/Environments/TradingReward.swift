import Foundation

/// How a trading environment rewards a step, from the portfolio's return over it (costs
/// included) and its equity curve.
public enum TradingReward: String, Sendable, Codable, CaseIterable {
    /// The seed design's risk-adjusted reward: r · Sharpe − 0.1 · drawdown, with Sharpe the
    /// mean over standard deviation of the last `window` step returns (0 until there are two,
    /// or while they do not vary) and drawdown 1 − equity / peak equity.
    case riskAdjusted
    /// The differential Sharpe ratio (Moody and Saffell 1998): the first-order change in an
    /// exponentially weighted Sharpe ratio that this step's return causes, with adaptation
    /// rate η.
    case differentialSharpe
    /// log(equity after / equity before), costs included.
    case logReturn
}

/// The running statistics a trading reward needs, for one episode.
struct RewardTracker: Sendable {
    let kind: TradingReward
    let window: Int
    let drawdownPenalty: Double
    let adaptation: Double
    private var recent: [Double] = []
    private var peak: Double
    /// The differential Sharpe ratio's exponential moments of returns and squared returns.
    private var first = 0.0
    private var second = 0.0

    init(kind: TradingReward, window: Int, drawdownPenalty: Double, adaptation: Double, equity: Double) {
        self.kind = kind
        self.window = window
        self.drawdownPenalty = drawdownPenalty
        self.adaptation = adaptation
        peak = equity
    }

    /// The current drawdown from the equity curve's peak.
    func drawdown(at equity: Double) -> Double { peak > 0 ? max(0, 1 - equity / peak) : 0 }

    /// The reward of a step that took equity from `before` to `after`.
    mutating func reward(from before: Double, to after: Double) -> Double {
        let stepReturn = before > 0 ? after / before - 1 : -1
        peak = max(peak, after)
        recent.append(stepReturn)
        if recent.count > window { recent.removeFirst(recent.count - window) }
        switch kind {
        case .logReturn:
            return before > 0 && after > 0 ? Foundation.log(after / before) : -10
        case .riskAdjusted:
            var sharpe = 0.0
            if recent.count >= 2 {
                let mean = recent.reduce(0, +) / Double(recent.count)
                let variance = recent.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(recent.count - 1)
                if variance > 1e-18 { sharpe = mean / variance.squareRoot() }
            }
            return stepReturn * sharpe - drawdownPenalty * drawdown(at: after)
        case .differentialSharpe:
            let (deltaFirst, deltaSecond) = (stepReturn - first, stepReturn * stepReturn - second)
            let variance = second - first * first
            let value = variance > 1e-12 ? (second * deltaFirst - 0.5 * first * deltaSecond) / Foundation.pow(variance, 1.5) : 0
            first += adaptation * deltaFirst
            second += adaptation * deltaSecond
            return value
        }
    }
}
