import Foundation

/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64): the same seed
/// gives the same market on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// A uniform number in (0, 1).
    public mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992 }

    /// A standard normal number (Box–Muller).
    public mutating func normal() -> Double {
        sqrt(-2 * log(uniform())) * cos(2 * Double.pi * uniform())
    }
}

/// A synthetic market of several correlated assets: geometric Brownian motion whose drift and
/// volatility switch between regimes (a Markov chain: calm bull, volatile bear, sideways), with
/// GARCH(1,1) volatility clustering per asset, one common factor for correlation, intrabar
/// highs and lows, and volume that rises with the size of moves. Seeded and reproducible.
public struct SyntheticMarket: Sendable {
    public struct Config: Codable, Sendable, Equatable {
        public var symbols: [String] = ["AAA", "BBB", "CCC", "DDD"]
        /// The first bar's open time, milliseconds since 1970.
        public var start: Int64 = 1_704_067_200_000  // 2024-01-01
        /// Bar length in milliseconds (default one minute).
        public var interval: Int64 = 60_000
        /// Correlation of any two assets' shocks (one common factor).
        public var correlation: Double = 0.5
        /// Per-bar volatility of returns in the calm regime.
        public var volatility: Double = 0.001
        /// Per-bar drift in the calm regime.
        public var drift: Double = 0.00002
        /// GARCH(1,1) weights of the last squared shock and the last variance.
        public var garchAlpha: Double = 0.08
        public var garchBeta: Double = 0.9
        /// Chance per bar of leaving the current regime.
        public var regimeSwitch: Double = 0.002
        public var startPrice: Double = 100
        public var baseVolume: Double = 10_000
        public var seed: UInt64 = 42

        public init() {}

        /// - Throws: `MarketDataError` naming the first bad value.
        public func validate() throws {
            guard !symbols.isEmpty else { throw MarketDataError("the synthetic market needs at least one symbol") }
            guard interval > 0 else { throw MarketDataError("interval must be above 0 ms, not \(interval)") }
            guard (0...0.99).contains(correlation) else {
                throw MarketDataError("correlation must be in [0, 0.99], not \(correlation)")
            }
            guard volatility > 0, volatility < 0.2 else {
                throw MarketDataError("volatility per bar must be in (0, 0.2), not \(volatility)")
            }
            guard garchAlpha >= 0, garchBeta >= 0, garchAlpha + garchBeta < 1 else {
                throw MarketDataError(
                    "GARCH weights need alpha, beta >= 0 and alpha + beta < 1 (got \(garchAlpha), \(garchBeta))")
            }
            guard (0...1).contains(regimeSwitch) else {
                throw MarketDataError("regimeSwitch must be a probability, not \(regimeSwitch)")
            }
            guard startPrice > 0, baseVolume > 0 else { throw MarketDataError("startPrice and baseVolume must be above 0") }
        }
    }

    /// The regimes: drift and volatility multipliers.
    static let regimes: [(drift: Double, volatility: Double)] = [(1, 1), (-2.5, 2.2), (0, 0.7)]

    public let config: Config

    public init(config: Config = Config()) throws {
        try config.validate()
        self.config = config
    }

    /// `bars` bars of every symbol, and the regime of each bar.
    public func generate(bars: Int) -> (series: [MarketData], regimes: [Int]) {
        var random = SeededGenerator(seed: config.seed)
        let count = config.symbols.count
        var series = config.symbols.map { MarketData(symbol: $0, exchange: "SYNTH", assetClass: .stock) }
        for index in series.indices {
            series[index].timestamps.reserveCapacity(bars)
            series[index].open.reserveCapacity(bars)
            series[index].high.reserveCapacity(bars)
            series[index].low.reserveCapacity(bars)
            series[index].close.reserveCapacity(bars)
            series[index].volume.reserveCapacity(bars)
        }
        var regimes: [Int] = []
        regimes.reserveCapacity(bars)
        let base = config.volatility * config.volatility
        let omega = base * (1 - config.garchAlpha - config.garchBeta)
        var variance = [Double](repeating: base, count: count)
        var lastShock = [Double](repeating: 0, count: count)
        var price = (0..<count).map { config.startPrice * (1 + 0.2 * Double($0)) }
        var regime = 0
        let common = sqrt(config.correlation)
        let own = sqrt(1 - config.correlation)
        for step in 0..<bars {
            if random.uniform() < config.regimeSwitch {
                regime = (regime + 1 + Int(random.next() % 2)) % Self.regimes.count
            }
            regimes.append(regime)
            let factor = random.normal()
            let timestamp = config.start + Int64(step) * config.interval
            for asset in 0..<count {
                variance[asset] =
                    omega + config.garchAlpha * lastShock[asset] * lastShock[asset] + config.garchBeta * variance[asset]
                let sigma = sqrt(variance[asset]) * Self.regimes[regime].volatility
                let shock = sigma * (common * factor + own * random.normal())
                lastShock[asset] = shock / Self.regimes[regime].volatility
                let open = price[asset] * exp(0.1 * sigma * random.normal())
                let close = open * exp(config.drift * Self.regimes[regime].drift - 0.5 * sigma * sigma + shock)
                let high = max(open, close) * exp(abs(random.normal()) * 0.5 * sigma)
                let low = min(open, close) * exp(-abs(random.normal()) * 0.5 * sigma)
                let activity = 1 + 2 * abs(shock) / config.volatility
                let volume = (config.baseVolume * activity * exp(0.3 * random.normal())).rounded()
                series[asset].timestamps.append(timestamp)
                series[asset].open.append(open)
                series[asset].high.append(high)
                series[asset].low.append(low)
                series[asset].close.append(close)
                series[asset].volume.append(volume)
                price[asset] = close
            }
        }
        return (series, regimes)
    }
}

/// The generator and the CSV files as `ExchangeConnector`s.
public struct SyntheticConnector: ExchangeConnector {
    public let market: SyntheticMarket
    public let bars: Int
    public var name: String { "synthetic" }

    public init(market: SyntheticMarket, bars: Int) {
        self.market = market
        self.bars = bars
    }

    public func historicalBars(symbol: String, range: ClosedRange<Int64>) async throws -> MarketData {
        guard let index = market.config.symbols.firstIndex(of: symbol) else {
            throw MarketDataError(
                "the synthetic market has no symbol \(symbol) (it has \(market.config.symbols.joined(separator: ", ")))")
        }
        let series = market.generate(bars: bars).series[index]
        return series.selecting(series.timestamps.indices.filter { range.contains(series.timestamps[$0]) })
    }

    public func stream(symbol: String) -> AsyncThrowingStream<Bar, any Error> {
        let market = self.market
        let bars = self.bars
        return AsyncThrowingStream { continuation in
            guard let index = market.config.symbols.firstIndex(of: symbol) else {
                continuation.finish(throwing: MarketDataError("the synthetic market has no symbol \(symbol)"))
                return
            }
            let series = market.generate(bars: bars).series[index]
            for bar in 0..<series.count { continuation.yield(series[bar]) }
            continuation.finish()
        }
    }

    public func placeOrder(_ order: Order) async throws -> String {
        throw MarketDataError("the synthetic market is a data source: it takes no orders (backtests fill them)")
    }
}

/// CSV files in a folder, one per symbol (`<folder>/<symbol>.csv`), as an `ExchangeConnector`.
public struct CSVConnector: ExchangeConnector {
    public let folder: String
    public let timeZone: TimeZone
    public var name: String { "csv" }

    public init(folder: String, timeZone: TimeZone = .gmt) {
        self.folder = folder
        self.timeZone = timeZone
    }

    public func historicalBars(symbol: String, range: ClosedRange<Int64>) async throws -> MarketData {
        let series = try CSVBars.load(path: "\(folder)/\(symbol).csv", symbol: symbol, timeZone: timeZone)
        return series.selecting(series.timestamps.indices.filter { range.contains(series.timestamps[$0]) })
    }

    public func stream(symbol: String) -> AsyncThrowingStream<Bar, any Error> {
        let path = "\(folder)/\(symbol).csv"
        let zone = timeZone
        return AsyncThrowingStream { continuation in
            do {
                let series = try CSVBars.load(path: path, symbol: symbol, timeZone: zone)
                for bar in 0..<series.count { continuation.yield(series[bar]) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }

    public func placeOrder(_ order: Order) async throws -> String {
        throw MarketDataError("CSV files are a data source: they take no orders (backtests fill them)")
    }
}
