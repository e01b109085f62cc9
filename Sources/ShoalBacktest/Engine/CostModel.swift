import Foundation

/// What trading costs: commission, slippage and market impact.
public struct CostModel: Sendable, Equatable, Codable {
    /// Commission in basis points of the notional.
    public var commissionBps = 0.0
    /// Commission per share.
    public var commissionPerShare = 0.0
    /// Slippage in basis points of the price, against the trader.
    public var slippageBps = 0.0
    /// Slippage scaled by volatility: this many times the bar returns' standard deviation over
    /// `window` bars (0: none).
    public var slippageVolatilityMultiple = 0.0
    /// Square-root market impact `k·σ·sqrt(quantity / ADV)` as a fraction of the price, σ and
    /// ADV (average volume) over `window` bars before the decision (0: none).
    public var impactCoefficient = 0.0
    public var window = 20

    public init() {}

    /// The fraction of the price an order of `quantity` shares pays beyond the reference price,
    /// given the volatility and average volume known at the decision.
    func priceShift(quantity: Double, volatility: Double, averageVolume: Double) -> Double {
        var shift = slippageBps / 10_000 + slippageVolatilityMultiple * volatility
        if impactCoefficient > 0, averageVolume > 0 {
            shift += impactCoefficient * volatility * (Swift.abs(quantity) / averageVolume).squareRoot()
        }
        return shift
    }

    func commission(quantity: Double, price: Double) -> Double {
        Swift.abs(quantity) * price * commissionBps / 10_000 + Swift.abs(quantity) * commissionPerShare
    }
}
