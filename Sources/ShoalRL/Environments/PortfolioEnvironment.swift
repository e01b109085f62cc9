import Foundation
import ShoalMarket

/// A portfolio of several assets rebalanced toward target weights.
///
/// Actions are one non-negative score per asset plus one for cash, normalised to weights that
/// sum to 1 (all cash when every score is 0). Rebalancing from the weights the market drifted
/// to costs `transactionCost` on the turnover (the assets' weight changes, summed). Observations are each asset's features at the
/// bar, then the current weights (assets, then cash). Rewards as `TradingReward`, scaled.
public struct PortfolioEnvironment: Environment {
    public struct Config: Sendable, Codable, Equatable {
        public var initialBalance = 100_000.0
        public var transactionCost = 0.001
        public var reward: TradingReward = .logReturn
        public var rewardScale = 100.0
        public var episodeLength: Int? = 256
        public var sharpeWindow = 20
        public var drawdownPenalty = 0.1
        public var adaptation = 0.01

        public init() {}
    }

    public let config: Config
    public let assets: [MarketFeatures]
    public let span: Range<Int>
    private var generator: SeededGenerator
    private var bar = 0
    private var end = 0
    public private(set) var equity: Double
    /// Assets then cash, summing to 1.
    public private(set) var weights: [Double]
    private var tracker: RewardTracker

    /// - Throws: `EnvironmentError` when the assets' bars differ in number or the span is too short.
    public init(assets: [MarketFeatures], span: Range<Int>? = nil, config: Config = Config(), seed: UInt64 = 0) throws {
        guard let first = assets.first, assets.allSatisfy({ $0.bars == first.bars }) else {
            throw EnvironmentError("portfolio environment: the assets need the same bars")
        }
        guard config.initialBalance > 0, config.transactionCost >= 0, config.rewardScale > 0, config.sharpeWindow >= 2 else {
            throw EnvironmentError("portfolio environment: a setting is out of range")
        }
        let complete = assets.map(\.firstComplete).max() ?? 0
        let span = span ?? complete..<first.bars
        guard span.lowerBound >= complete, span.upperBound <= first.bars, span.count >= 2 else {
            throw EnvironmentError(
                "portfolio environment: span \(span) is not inside the complete bars \(complete)..<\(first.bars)")
        }
        if let length = config.episodeLength, length < 1 || length >= span.count {
            throw EnvironmentError("portfolio environment: episodes of \(length) bars do not fit a span of \(span.count)")
        }
        self.config = config
        self.assets = assets
        self.span = span
        generator = SeededGenerator(seed: seed)
        equity = config.initialBalance
        weights = [Double](repeating: 0, count: assets.count) + [1]
        tracker = RewardTracker(
            kind: config.reward, window: config.sharpeWindow, drawdownPenalty: config.drawdownPenalty,
            adaptation: config.adaptation,
            equity: equity)
    }

    public var observationSpace: Space {
        .box(
            dimension: assets.reduce(0) { $0 + $1.width } + assets.count + 1, low: -.greatestFiniteMagnitude,
            high: .greatestFiniteMagnitude)
    }
    public var actionSpace: Space { .box(dimension: assets.count + 1, low: 0, high: 1) }

    public var observation: [Float] { assets.flatMap { Array($0.row(bar)) } + weights.map(Float.init) }

    public mutating func reset(seed: UInt64? = nil) -> [Float] {
        if let seed { generator = SeededGenerator(seed: seed) }
        if let length = config.episodeLength {
            bar = span.lowerBound + Int(generator.next() % UInt64(span.count - length))
            end = bar + length
        } else {
            bar = span.lowerBound
            end = span.upperBound - 1
        }
        equity = config.initialBalance
        weights = [Double](repeating: 0, count: assets.count) + [1]
        tracker = RewardTracker(
            kind: config.reward, window: config.sharpeWindow, drawdownPenalty: config.drawdownPenalty,
            adaptation: config.adaptation,
            equity: equity)
        return observation
    }

    /// Target weights from an action's scores.
    static func weights(from action: [Float], count: Int) -> [Double] {
        let scores = (0..<count).map { Double(max(0, min(1, $0 < action.count ? action[$0] : 0))) }
        let total = scores.reduce(0, +)
        return total > 1e-12 ? scores.map { $0 / total } : [Double](repeating: 0, count: count - 1) + [1]
    }

    public mutating func step(_ action: [Float]) -> StepResult {
        let before = equity
        let target = Self.weights(from: action, count: assets.count + 1)
        // The notional traded: the change in each asset's weight (cash is what is left).
        let turnover = zip(target, weights).dropLast().reduce(0) { $0 + abs($1.0 - $1.1) }
        let cost = turnover * equity * config.transactionCost
        let returns = assets.map { $0.prices[bar + 1] / $0.prices[bar] - 1 } + [0]
        let grown = zip(target, returns).map { $0 * (1 + $1) }
        let growth = grown.reduce(0, +)
        equity = max(0, (equity - cost) * growth)
        weights = growth > 0 ? grown.map { $0 / growth } : target
        bar += 1
        let reward = tracker.reward(from: before, to: equity) * config.rewardScale
        let terminated = equity <= 0.5 * config.initialBalance
        return StepResult(
            observation: observation, reward: reward, terminated: terminated, truncated: !terminated && bar >= end,
            info: ["equity": equity, "turnover": turnover, "cost": cost, "return": equity / max(before, 1e-12) - 1])
    }
}
