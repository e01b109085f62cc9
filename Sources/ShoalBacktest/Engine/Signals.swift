import Foundation

/// What a model says about one instrument after one bar: the action, the weight it asks for,
/// how sure it is, and which model said it.
public struct TradingSignal: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Equatable, Codable, CaseIterable { case sell, hold, buy }

    public var bar: Int
    public var timestamp: Int64
    public var instrument: String
    public var action: Action
    /// The share of the equity the signal wants in the instrument (a sell: 0, or negative
    /// where shorting is allowed); a hold leaves the weight as it is.
    public var targetWeight: Double
    /// How sure the source is, 0…1: the Monte Carlo dropout's mean top-class probability, or the
    /// ensemble's share of votes for the action.
    public var confidence: Double
    /// How much the source disagrees with itself: the spread of the Monte Carlo regression
    /// (in return standard deviations), or the ensemble members' disagreement.
    public var disagreement: Double
    /// The model and its version, as the registry names it (or its folder).
    public var modelVersion: String

    public init(
        bar: Int, timestamp: Int64, instrument: String, action: Action, targetWeight: Double, confidence: Double,
        disagreement: Double, modelVersion: String
    ) {
        self.bar = bar
        self.timestamp = timestamp
        self.instrument = instrument
        self.action = action
        self.targetWeight = targetWeight
        self.confidence = confidence
        self.disagreement = disagreement
        self.modelVersion = modelVersion
    }
}

extension Array where Element == TradingSignal {
    /// The signals with their bars counted from `start` (for a backtest of the bars from there).
    public func rebased(to start: Int) -> [TradingSignal] {
        map {
            var signal = $0
            signal.bar -= start
            return signal
        }
    }
}

/// Trades signals as weights: at each bar, every asset whose signal passes the confidence gate
/// (and, when set, the disagreement ceiling) moves to the signal's target weight (a hold keeps
/// the weight); it rebalances when a weight changes. Signals are looked up by bar, so a signal
/// computed for bar b is acted on after bar b closes, never before.
public struct SignalStrategy: WeightStrategy {
    /// Each bar's signals, one per asset at most (by the asset's index in the market).
    public let signals: [Int: [Int: TradingSignal]]
    public let minimumConfidence: Double
    public let maximumDisagreement: Double?
    var targets: [Double] = []
    /// Signals held back by the gate, and acted on.
    public private(set) var gated = 0
    public private(set) var acted = 0

    /// - Parameter signals: any number of signals; an instrument not in `symbols` is an error.
    /// - Throws: `BacktestError` for a signal on an unknown instrument or two for one asset at one
    ///   bar, or a gate outside 0…1.
    public init(
        _ signals: [TradingSignal], symbols: [String], minimumConfidence: Double = 0, maximumDisagreement: Double? = nil
    ) throws {
        guard minimumConfidence >= 0, minimumConfidence <= 1 else {
            throw BacktestError("the confidence gate must be in [0, 1], not \(minimumConfidence)")
        }
        var table: [Int: [Int: TradingSignal]] = [:]
        for signal in signals {
            guard let asset = symbols.firstIndex(of: signal.instrument) else {
                throw BacktestError(
                    "a signal for \(signal.instrument), which the market does not have (\(symbols.joined(separator: ", ")))")
            }
            guard table[signal.bar]?[asset] == nil else {
                throw BacktestError("two signals for \(signal.instrument) at bar \(signal.bar)")
            }
            table[signal.bar, default: [:]][asset] = signal
        }
        self.signals = table
        self.minimumConfidence = minimumConfidence
        self.maximumDisagreement = maximumDisagreement
    }

    public mutating func weights(at view: MarketView) -> [Double]? {
        if targets.count != view.assets { targets = [Double](repeating: 0, count: view.assets) }
        guard let now = signals[view.bar] else { return nil }
        var changed = false
        for (asset, signal) in now where asset < view.assets {
            guard signal.confidence >= minimumConfidence, signal.disagreement <= (maximumDisagreement ?? .infinity) else {
                gated += 1
                continue
            }
            acted += 1
            guard signal.action != .hold, signal.targetWeight != targets[asset] else { continue }
            targets[asset] = signal.targetWeight
            changed = true
        }
        return changed ? targets : nil
    }
}

/// Whether a signal source may trade: its signals backtested on a validation span with the
/// real costs must end above the cash they started with (holding cash returns nothing here).
public struct SignalValidation: Sendable {
    /// The validation span's total return after costs.
    public var totalReturn: Double
    public var fills: Int
    /// True when the source beat cash on the validation span.
    public var passed: Bool { totalReturn > 0 }

    /// Backtests `strategy` over `bars` (the validation span's bars) with `config`.
    public init(_ strategy: SignalStrategy, on bars: MarketBars, config: BacktestConfig) throws {
        var validation = Rebalancing(strategy, minimumTrade: config.minimumTrade, costs: config.costs)
        let result = try Backtester.run(&validation, on: bars, config: config)
        totalReturn = (result.equity.last ?? config.initialCash) / config.initialCash - 1
        fills = result.fills.count
    }
}
