import Foundation
import ShoalMarket

/// The seed design's single-asset trading environment.
///
/// Each step the agent sets a target position as a fraction of equity (long positive, short
/// negative), which is traded at the bar's close paying `transactionCost` and `slippage` on
/// the notional traded, and then earns the position's return to the next close. Continuous
/// actions are `[position_size ∈ [−1, 1], hold_time ∈ [0, 1]]`: a new position is then kept,
/// whatever the agent says, for `hold_time × maxHoldSteps` bars. The discrete variant's
/// actions are Sell (short, or flat when shorting is off), Hold and Buy. Observations are the
/// market features of the bar followed by the portfolio state: position, return since the
/// position was opened, bars held over `maxHoldSteps`, bars still locked over
/// `maxHoldSteps`, drawdown. Rewards are chosen by `TradingReward`, scaled by `rewardScale`.
/// An episode is `episodeLength` bars from a random start in the span (or the whole span
/// from its start), and terminates when equity falls to `bankruptcy` × the initial balance.
public struct TradingEnvironment: Environment {
    public enum ActionMode: String, Sendable, Codable {
        case continuous, discrete
    }

    public struct Config: Sendable, Codable, Equatable {
        public var initialBalance = 100_000.0
        /// Fraction of the traded notional paid as commission.
        public var transactionCost = 0.001
        /// Fraction of the traded notional lost to the price moving against the order.
        public var slippage = 0.0005
        public var actionMode: ActionMode = .continuous
        public var reward: TradingReward = .riskAdjusted
        public var rewardScale = 100.0
        public var allowShort = true
        public var maxHoldSteps = 20
        /// Bars per episode; nil runs the whole span from its start.
        public var episodeLength: Int? = 256
        public var sharpeWindow = 20
        public var drawdownPenalty = 0.1
        /// The differential Sharpe ratio's adaptation rate η.
        public var adaptation = 0.01
        public var bankruptcy = 0.5
        /// Position changes smaller than this (a fraction of equity) are not traded: the position
        /// stays. 0 trades every change.
        public var rebalanceBand = 0.0

        public init() {}

        public func validate() throws {
            guard initialBalance > 0, transactionCost >= 0, slippage >= 0, rewardScale > 0, maxHoldSteps >= 0, sharpeWindow >= 2,
                (0..<1).contains(bankruptcy), adaptation > 0, adaptation < 1, (0...2).contains(rebalanceBand)
            else { throw EnvironmentError("trading environment: a setting is out of range (balances, costs, windows, rates)") }
            if let episodeLength, episodeLength < 1 {
                throw EnvironmentError("trading environment: episodeLength must be positive")
            }
        }
    }

    public let config: Config
    public let market: MarketFeatures
    /// When set, observations carry its features of each bar instead of `market`'s.
    public let encoder: EncodedFeatures?
    /// The bars episodes are drawn from.
    public let span: Range<Int>
    private var generator: SeededGenerator
    private var bar = 0
    private var end = 0
    public private(set) var equity: Double
    public private(set) var position = 0.0
    private var entryPrice = 0.0
    private var heldFor = 0
    private var lockedFor = 0
    private var tracker: RewardTracker

    /// - Parameter span: the bars to trade in (default: every bar with complete features).
    /// - Throws: `EnvironmentError` for a bad configuration or a span too short for one step.
    /// - Parameter encoder: observe its features of each bar (the hybrid model's, computed as
    ///   bars are met) instead of `market`'s; `market` still gives the prices.
    public init(
        market: MarketFeatures, span: Range<Int>? = nil, config: Config = Config(), seed: UInt64 = 0,
        encoder: EncodedFeatures? = nil
    ) throws {
        try config.validate()
        let firstComplete = max(market.firstComplete, encoder?.firstComplete ?? 0)
        let span = span ?? firstComplete..<market.bars
        guard span.lowerBound >= firstComplete, span.upperBound <= market.bars, span.count >= 2 else {
            throw EnvironmentError(
                "trading environment: span \(span) is not inside the complete bars \(firstComplete)..<\(market.bars)")
        }
        if let encoder, encoder.inputs.bars != market.bars {
            throw EnvironmentError(
                "trading environment: the encoder's market has \(encoder.inputs.bars) bars, the prices \(market.bars)")
        }
        self.encoder = encoder
        if let length = config.episodeLength, length >= span.count {
            throw EnvironmentError("trading environment: episodes of \(length) bars do not fit a span of \(span.count)")
        }
        self.config = config
        self.market = market
        self.span = span
        generator = SeededGenerator(seed: seed)
        equity = config.initialBalance
        tracker = RewardTracker(
            kind: config.reward, window: config.sharpeWindow, drawdownPenalty: config.drawdownPenalty,
            adaptation: config.adaptation, equity: config.initialBalance)
    }

    public var observationSpace: Space {
        .box(dimension: (encoder?.width ?? market.width) + 5, low: -.greatestFiniteMagnitude, high: .greatestFiniteMagnitude)
    }

    public var actionSpace: Space {
        switch config.actionMode {
        case .continuous: .box(low: [-1, 0], high: [1, 1])
        case .discrete: .discrete(3)
        }
    }

    /// The current bar.
    public var currentBar: Int { bar }

    public var observation: [Float] {
        let price = market.prices[bar]
        let sinceEntry = position != 0 && entryPrice > 0 ? (price / entryPrice - 1) * (position > 0 ? 1 : -1) : 0
        let hold = Double(max(1, config.maxHoldSteps))
        return (encoder?.row(bar) ?? Array(market.row(bar)))
            + [
                Float(position), Float(sinceEntry), Float(Double(heldFor) / hold), Float(Double(lockedFor) / hold),
                Float(tracker.drawdown(at: equity)),
            ]
    }

    public mutating func reset(seed: UInt64? = nil) -> [Float] {
        if let seed { generator = SeededGenerator(seed: seed) }
        if let length = config.episodeLength {
            let starts = span.count - length
            bar = span.lowerBound + Int(generator.next() % UInt64(starts))
            end = bar + length
        } else {
            bar = span.lowerBound
            end = span.upperBound - 1
        }
        equity = config.initialBalance
        position = 0
        entryPrice = 0
        heldFor = 0
        lockedFor = 0
        tracker = RewardTracker(
            kind: config.reward, window: config.sharpeWindow, drawdownPenalty: config.drawdownPenalty,
            adaptation: config.adaptation, equity: equity)
        return observation
    }

    /// The position an action asks for, and for how many bars to lock it.
    private func target(of action: [Float]) -> (position: Double, lock: Int) {
        switch config.actionMode {
        case .continuous:
            let size = Double(min(max(action.first ?? 0, -1), 1))
            let hold = Double(min(max(action.count > 1 ? action[1] : 0, 0), 1))
            return (config.allowShort ? size : max(0, size), Int((hold * Double(config.maxHoldSteps)).rounded()))
        case .discrete:
            switch Int(action.first ?? 1) {
            case 0: return (config.allowShort ? -1 : 0, 0)
            case 2: return (1, 0)
            default: return (position, 0)
            }
        }
    }

    public mutating func step(_ action: [Float]) -> StepResult {
        let before = equity
        let price = market.prices[bar]
        var (wanted, lock) = target(of: action)
        if lockedFor > 0 {
            wanted = position
            lock = lockedFor - 1
        } else if abs(wanted - position) < config.rebalanceBand {
            // Inside the band: not worth its costs.
            wanted = position
            lock = 0
        }
        let traded = abs(wanted - position)
        let cost = traded * equity * (config.transactionCost + config.slippage)
        if traded > 1e-12 {
            // A position opened or turned round starts its own count; resizing keeps it.
            if position == 0 || wanted == 0 || (wanted > 0) != (position > 0) {
                entryPrice = price
                heldFor = 0
            }
            lockedFor = lock
        } else {
            // No trade: a running lock counts down; asking for the same position locks nothing.
            lockedFor = lockedFor > 0 ? lock : 0
        }
        position = wanted
        bar += 1
        heldFor += position != 0 ? 1 : 0
        let assetReturn = market.prices[bar] / price - 1
        equity = max(0, (equity - cost) * (1 + position * assetReturn))
        let reward = tracker.reward(from: before, to: equity) * config.rewardScale
        let terminated = equity <= config.bankruptcy * config.initialBalance
        return StepResult(
            observation: observation, reward: reward, terminated: terminated, truncated: !terminated && bar >= end,
            info: ["equity": equity, "position": position, "cost": cost, "return": equity / max(before, 1e-12) - 1])
    }
}
