/// An order a strategy submits after a bar closes.
public struct Order: Sendable, Equatable, Codable {
    public enum Kind: Sendable, Equatable, Codable {
        /// At the fill bar's price (its open, or the decision bar's close).
        case market
        /// A buy at this price or lower, a sell at this price or higher.
        case limit(Double)
        /// Becomes a market order once the price trades through it (a buy at or above, a sell at
        /// or below); fills at the stop or the open beyond it.
        case stop(Double)
    }

    /// How long an unfilled order stays.
    public enum TimeInForce: Sendable, Equatable, Codable {
        /// The next bar only.
        case day
        /// Until it fills or the run ends.
        case goodTillCancelled
    }

    public var asset: Int
    /// Shares: positive buys, negative sells.
    public var quantity: Double
    public var kind: Kind
    public var timeInForce: TimeInForce

    public init(asset: Int, quantity: Double, kind: Kind = .market, timeInForce: TimeInForce = .day) {
        self.asset = asset
        self.quantity = quantity
        self.kind = kind
        self.timeInForce = timeInForce
    }
}

/// An order filled: when, at what price, and what it cost.
public struct Fill: Sendable, Equatable, Codable {
    /// The bar it filled on.
    public var bar: Int
    public var asset: Int
    public var quantity: Double
    /// The price paid or received per share, slippage and impact included.
    public var price: Double
    /// The reference price before slippage and impact (the open, the close, the limit or stop).
    public var referencePrice: Double
    public var commission: Double
    /// What slippage and impact cost over the reference price, in cash.
    public var slippage: Double
}

/// An order the backtester did not fill, and why.
public struct Rejection: Sendable, Equatable, Codable {
    public var bar: Int
    public var order: Order
    public var reason: String
}
