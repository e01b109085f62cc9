import Foundation

/// What kind of market an instrument trades in.
public enum AssetClass: String, Sendable, Codable, CaseIterable {
    case stock, forex, crypto
}

/// One OHLCV bar.
public struct Bar: Sendable, Equatable, Codable {
    /// Milliseconds since 1970, UTC: the bar's open time.
    public var timestamp: Int64
    public var open: Double
    public var high: Double
    public var low: Double
    public var close: Double
    public var volume: Double

    public init(timestamp: Int64, open: Double, high: Double, low: Double, close: Double, volume: Double) {
        self.timestamp = timestamp
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
    }
}

/// A best bid and offer at a time.
public struct Quote: Sendable, Equatable, Codable {
    public var timestamp: Int64
    public var bid: Double
    public var ask: Double
    public var bidSize: Double
    public var askSize: Double

    public init(timestamp: Int64, bid: Double, ask: Double, bidSize: Double = 0, askSize: Double = 0) {
        self.timestamp = timestamp
        self.bid = bid
        self.ask = ask
        self.bidSize = bidSize
        self.askSize = askSize
    }
}

/// One instrument's bars, stored column by column (each field contiguous, as the feature code
/// reads them), in time order unless a validator says otherwise.
public struct MarketData: Sendable, Equatable {
    public var symbol: String
    public var exchange: String
    public var assetClass: AssetClass
    public var timestamps: [Int64]
    public var open: [Double]
    public var high: [Double]
    public var low: [Double]
    public var close: [Double]
    public var volume: [Double]
    /// Quotes where the source has them (aligned with the bars, or empty).
    public var quotes: [Quote]

    public init(symbol: String, exchange: String = "", assetClass: AssetClass = .stock, bars: [Bar] = [], quotes: [Quote] = []) {
        self.symbol = symbol
        self.exchange = exchange
        self.assetClass = assetClass
        timestamps = bars.map(\.timestamp)
        open = bars.map(\.open)
        high = bars.map(\.high)
        low = bars.map(\.low)
        close = bars.map(\.close)
        volume = bars.map(\.volume)
        self.quotes = quotes
    }

    public var count: Int { timestamps.count }

    public subscript(index: Int) -> Bar {
        Bar(
            timestamp: timestamps[index], open: open[index], high: high[index], low: low[index], close: close[index],
            volume: volume[index])
    }

    public var bars: [Bar] { (0..<count).map { self[$0] } }

    public mutating func append(_ bar: Bar) {
        timestamps.append(bar.timestamp)
        open.append(bar.open)
        high.append(bar.high)
        low.append(bar.low)
        close.append(bar.close)
        volume.append(bar.volume)
    }

    /// The bars at `indices`, in that order.
    public func selecting(_ indices: [Int]) -> MarketData {
        var result = MarketData(symbol: symbol, exchange: exchange, assetClass: assetClass)
        result.timestamps = indices.map { timestamps[$0] }
        result.open = indices.map { open[$0] }
        result.high = indices.map { high[$0] }
        result.low = indices.map { low[$0] }
        result.close = indices.map { close[$0] }
        result.volume = indices.map { volume[$0] }
        result.quotes = quotes.count == count ? indices.map { quotes[$0] } : []
        return result
    }
}

/// A source of market data: historical bars, a live stream, and orders — files, the synthetic
/// generator, and (later) exchanges conform.
public protocol ExchangeConnector: Sendable {
    /// The connector's name (`csv`, `synthetic`, an exchange's).
    var name: String { get }
    /// Bars of `symbol` with open times in `range` (milliseconds since 1970).
    func historicalBars(symbol: String, range: ClosedRange<Int64>) async throws -> MarketData
    /// New bars as they form.
    func stream(symbol: String) -> AsyncThrowingStream<Bar, any Error>
    /// Places an order; returns the venue's order id.
    func placeOrder(_ order: Order) async throws -> String
}

/// An order to a venue.
public struct Order: Sendable, Equatable, Codable {
    public enum Side: String, Sendable, Codable { case buy, sell }
    public enum Kind: Sendable, Equatable, Codable {
        case market
        case limit(price: Double)
    }
    public var symbol: String
    public var side: Side
    public var quantity: Double
    public var kind: Kind

    public init(symbol: String, side: Side, quantity: Double, kind: Kind = .market) {
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.kind = kind
    }
}

/// A market-data error that names what was wrong.
public struct MarketDataError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
