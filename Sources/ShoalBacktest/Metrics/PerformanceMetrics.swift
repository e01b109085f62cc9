import Foundation

/// A strategy's performance from its periodic simple returns, with empyrical's names and
/// definitions (252 periods a year, a risk-free rate and required return of 0, a VaR cutoff of
/// 0.05 unless set), the win/loss figures, and the probabilistic Sharpe ratio. Against a
/// benchmark's returns of the same periods also `alpha` and `beta`.
public struct PerformanceMetrics: Codable, Sendable {
    /// How the figures are computed.
    public struct Settings: Codable, Sendable, Equatable {
        public var periodsPerYear = 252.0
        /// Per period, subtracted from the returns (Sharpe ratio, alpha, omega).
        public var riskFree = 0.0
        /// Per period for the Sortino ratio and downside risk; annual for omega (empyrical's).
        public var requiredReturn = 0.0
        /// The tail share for value at risk.
        public var cutoff = 0.05

        public init() {}
    }

    public var annualReturn: Double
    public var cumulativeReturn: Double
    public var annualVolatility: Double
    public var sharpeRatio: Double
    public var sortinoRatio: Double
    public var downsideRisk: Double
    public var calmarRatio: Double
    public var maxDrawdown: Double
    public var omegaRatio: Double
    public var tailRatio: Double
    public var stability: Double
    public var valueAtRisk: Double
    public var conditionalValueAtRisk: Double
    /// Against the benchmark (nil without one).
    public var alpha: Double?
    public var beta: Double?
    /// The share of periods with a positive return among those with a non-zero one.
    public var hitRate: Double
    /// The mean positive and mean negative return (0 when there is none).
    public var averageWin: Double
    public var averageLoss: Double
    /// The probability that the true Sharpe ratio is above 0 (Bailey and López de Prado 2012).
    public var probabilisticSharpeRatio: Double
    public var periods: Int

    enum CodingKeys: String, CodingKey {
        case annualReturn = "annual_return"
        case cumulativeReturn = "cum_returns_final"
        case annualVolatility = "annual_volatility"
        case sharpeRatio = "sharpe_ratio"
        case sortinoRatio = "sortino_ratio"
        case downsideRisk = "downside_risk"
        case calmarRatio = "calmar_ratio"
        case maxDrawdown = "max_drawdown"
        case omegaRatio = "omega_ratio"
        case tailRatio = "tail_ratio"
        case stability = "stability_of_timeseries"
        case valueAtRisk = "value_at_risk"
        case conditionalValueAtRisk = "conditional_value_at_risk"
        case alpha, beta
        case hitRate = "hit_rate"
        case averageWin = "average_win"
        case averageLoss = "average_loss"
        case probabilisticSharpeRatio = "probabilistic_sharpe_ratio"
        case periods
    }

    /// Non-finite figures (a Sortino ratio without downside, a Calmar ratio without drawdown)
    /// are written as null, since JSON has no NaN.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        func put(_ value: Double?, _ key: CodingKeys) throws {
            guard let value else { return }
            if value.isFinite { try container.encode(value, forKey: key) } else { try container.encodeNil(forKey: key) }
        }
        try put(annualReturn, .annualReturn)
        try put(cumulativeReturn, .cumulativeReturn)
        try put(annualVolatility, .annualVolatility)
        try put(sharpeRatio, .sharpeRatio)
        try put(sortinoRatio, .sortinoRatio)
        try put(downsideRisk, .downsideRisk)
        try put(calmarRatio, .calmarRatio)
        try put(maxDrawdown, .maxDrawdown)
        try put(omegaRatio, .omegaRatio)
        try put(tailRatio, .tailRatio)
        try put(stability, .stability)
        try put(valueAtRisk, .valueAtRisk)
        try put(conditionalValueAtRisk, .conditionalValueAtRisk)
        try put(alpha, .alpha)
        try put(beta, .beta)
        try put(hitRate, .hitRate)
        try put(averageWin, .averageWin)
        try put(averageLoss, .averageLoss)
        try put(probabilisticSharpeRatio, .probabilisticSharpeRatio)
        try container.encode(periods, forKey: .periods)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        func take(_ key: CodingKeys) throws -> Double { try container.decodeIfPresent(Double.self, forKey: key) ?? .nan }
        annualReturn = try take(.annualReturn)
        cumulativeReturn = try take(.cumulativeReturn)
        annualVolatility = try take(.annualVolatility)
        sharpeRatio = try take(.sharpeRatio)
        sortinoRatio = try take(.sortinoRatio)
        downsideRisk = try take(.downsideRisk)
        calmarRatio = try take(.calmarRatio)
        maxDrawdown = try take(.maxDrawdown)
        omegaRatio = try take(.omegaRatio)
        tailRatio = try take(.tailRatio)
        stability = try take(.stability)
        valueAtRisk = try take(.valueAtRisk)
        conditionalValueAtRisk = try take(.conditionalValueAtRisk)
        alpha = try container.decodeIfPresent(Double.self, forKey: .alpha)
        beta = try container.decodeIfPresent(Double.self, forKey: .beta)
        hitRate = try take(.hitRate)
        averageWin = try take(.averageWin)
        averageLoss = try take(.averageLoss)
        probabilisticSharpeRatio = try take(.probabilisticSharpeRatio)
        periods = try container.decode(Int.self, forKey: .periods)
    }

    /// - Throws: `MetricsError` for fewer than two returns, a return that is not finite or
    ///   below −100%, or a benchmark of another length.
    public init(returns: [Double], benchmark: [Double]? = nil, settings: Settings = Settings()) throws {
        guard returns.count >= 2 else { throw MetricsError("the metrics need at least two returns, not \(returns.count)") }
        if let bad = returns.firstIndex(where: { !$0.isFinite || $0 < -1 }) {
            throw MetricsError("return \(bad + 1) is \(returns[bad]): returns must be finite and at least −100%")
        }
        if let benchmark {
            guard benchmark.count == returns.count else {
                throw MetricsError("the benchmark has \(benchmark.count) returns, the strategy \(returns.count)")
            }
            if let bad = benchmark.firstIndex(where: { !$0.isFinite }) {
                throw MetricsError("benchmark return \(bad + 1) is \(benchmark[bad])")
            }
        }
        let n = Double(returns.count)
        let factor = settings.periodsPerYear
        periods = returns.count
        cumulativeReturn = returns.reduce(1) { $0 * (1 + $1) } - 1
        annualReturn = Foundation.pow(1 + cumulativeReturn, factor / n) - 1
        annualVolatility = Self.deviation(returns) * factor.squareRoot()

        let excess = returns.map { $0 - settings.riskFree }
        let excessDeviation = Self.constant(excess) ? 0 : Self.deviation(excess)
        sharpeRatio = Self.mean(excess) / excessDeviation * factor.squareRoot()

        let required = returns.map { $0 - settings.requiredReturn }
        downsideRisk = (required.reduce(0) { $0 + Swift.min($1, 0) * Swift.min($1, 0) } / n).squareRoot() * factor.squareRoot()
        sortinoRatio = Self.mean(required) * factor / downsideRisk

        var wealth = 100.0
        var peak = wealth
        var worst = 0.0
        for value in returns {
            wealth *= 1 + value
            peak = Swift.max(peak, wealth)
            worst = Swift.min(worst, (wealth - peak) / peak)
        }
        maxDrawdown = worst
        let calmar = worst < 0 ? annualReturn / Swift.abs(worst) : .nan
        calmarRatio = calmar.isInfinite ? .nan : calmar

        let threshold = Foundation.pow(1 + settings.requiredReturn, 1 / factor) - 1
        var (gains, losses) = (0.0, 0.0)
        for value in returns {
            let beyond = value - settings.riskFree - threshold
            if beyond > 0 { gains += beyond } else { losses -= beyond }
        }
        omegaRatio = losses > 0 ? gains / losses : .nan

        let sorted = returns.sorted()
        tailRatio = Swift.abs(Self.percentile(sorted, 95)) / Swift.abs(Self.percentile(sorted, 5))
        valueAtRisk = Self.percentile(sorted, 100 * settings.cutoff)
        let tail = Int((n - 1) * settings.cutoff)
        conditionalValueAtRisk = Self.mean(Array(sorted[0...tail]))

        // R² of the cumulative log returns against time.
        var logWealth = 0.0
        let curve = returns.map { value -> Double in
            logWealth += Foundation.log1p(value)
            return logWealth
        }
        stability = Self.correlation(curve.indices.map(Double.init), curve).map { $0 * $0 } ?? .nan

        if let benchmark {
            let benchmarkMean = Self.mean(benchmark)
            var (covariance, variance) = (0.0, 0.0)
            for (value, reference) in zip(returns, benchmark) {
                covariance += (reference - benchmarkMean) * value
                variance += (reference - benchmarkMean) * (reference - benchmarkMean)
            }
            let slope = variance / n < 1e-30 ? Double.nan : covariance / variance
            beta = slope
            let residual = Self.mean(zip(returns, benchmark).map { ($0 - settings.riskFree) - slope * ($1 - settings.riskFree) })
            alpha = Foundation.pow(1 + residual, factor) - 1
        }

        let wins = returns.filter { $0 > 0 }
        let lossesOnly = returns.filter { $0 < 0 }
        hitRate = wins.count + lossesOnly.count == 0 ? 0 : Double(wins.count) / Double(wins.count + lossesOnly.count)
        averageWin = wins.isEmpty ? 0 : Self.mean(wins)
        averageLoss = lossesOnly.isEmpty ? 0 : Self.mean(lossesOnly)
        probabilisticSharpeRatio = Self.probabilisticSharpe(excess, benchmark: 0)
    }

    // MARK: - Statistics

    static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

    /// The sample standard deviation (n − 1).
    static func deviation(_ values: [Double]) -> Double {
        let centre = mean(values)
        return (values.reduce(0) { $0 + ($1 - centre) * ($1 - centre) } / Double(values.count - 1)).squareRoot()
    }

    static func constant(_ values: [Double]) -> Bool { values.allSatisfy { $0 == values[0] } }

    /// NumPy's percentile (linear interpolation) of sorted values.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let position = q / 100 * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = Swift.min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    /// Pearson's correlation, nil when either side is constant.
    static func correlation(_ x: [Double], _ y: [Double]) -> Double? {
        let (mx, my) = (mean(x), mean(y))
        var (sxy, sxx, syy) = (0.0, 0.0, 0.0)
        for (a, b) in zip(x, y) {
            sxy += (a - mx) * (b - my)
            sxx += (a - mx) * (a - mx)
            syy += (b - my) * (b - my)
        }
        guard sxx > 0, syy > 0 else { return nil }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Skewness and kurtosis (not excess) of the values, as population moments.
    static func moments(_ values: [Double]) -> (skewness: Double, kurtosis: Double) {
        let centre = mean(values)
        var (m2, m3, m4) = (0.0, 0.0, 0.0)
        for value in values {
            let d = value - centre
            m2 += d * d
            m3 += d * d * d
            m4 += d * d * d * d
        }
        let n = Double(values.count)
        (m2, m3, m4) = (m2 / n, m3 / n, m4 / n)
        guard m2 > 0 else { return (0, 3) }
        return (m3 / Foundation.pow(m2, 1.5), m4 / (m2 * m2))
    }

    /// The probability that the per-period Sharpe ratio of `excess` exceeds `benchmark`, given
    /// its length, skewness and kurtosis (Bailey and López de Prado 2012).
    public static func probabilisticSharpe(_ excess: [Double], benchmark: Double) -> Double {
        let deviation = deviation(excess)
        guard excess.count >= 2, deviation > 0 else { return .nan }
        let sharpe = mean(excess) / deviation
        let (skewness, kurtosis) = moments(excess)
        let spread = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe * sharpe
        guard spread > 0 else { return .nan }
        let z = (sharpe - benchmark) * Double(excess.count - 1).squareRoot() / spread.squareRoot()
        return 0.5 * erfc(-z / 2.squareRoot())
    }

    /// The deflated Sharpe ratio (Bailey and López de Prado 2014): the probabilistic Sharpe
    /// ratio against the largest per-period Sharpe ratio expected from `trials` strategies of
    /// no skill whose Sharpe ratios vary by `trialVariance` — honesty when many were tried.
    public static func deflatedSharpe(_ excess: [Double], trials: Int, trialVariance: Double) -> Double {
        guard trials >= 2, trialVariance >= 0 else { return probabilisticSharpe(excess, benchmark: 0) }
        let euler = 0.577_215_664_901_532_9
        let n = Double(trials)
        let expectedMaximum =
            trialVariance.squareRoot()
            * ((1 - euler) * inverseNormal(1 - 1 / n) + euler * inverseNormal(1 - 1 / (n * Foundation.exp(1))))
        return probabilisticSharpe(excess, benchmark: expectedMaximum)
    }

    /// The standard normal quantile (Acklam's rational approximation, refined by one Halley step).
    static func inverseNormal(_ p: Double) -> Double {
        let a = [
            -39.696_830_286_653_76, 220.946_098_424_520_5, -275.928_510_446_968_7, 138.357_751_867_269, -30.664_798_066_147_16,
            2.506_628_277_459_239,
        ]
        let b = [
            -54.476_098_798_224_06, 161.585_836_858_040_9, -155.698_979_859_886_6, 66.801_311_887_719_72, -13.280_681_552_885_72,
        ]
        let c = [
            -0.007_784_894_002_430_293, -0.322_396_458_041_136_5, -2.400_758_277_161_838, -2.549_732_539_343_734,
            4.374_664_141_464_968, 2.938_163_982_698_783,
        ]
        let d = [0.007_784_695_709_041_462, 0.322_467_129_070_039_8, 2.445_134_137_142_996, 3.754_408_661_907_416]
        let low = 0.024_25
        var x: Double
        if p < low {
            let q = (-2 * Foundation.log(p)).squareRoot()
            x =
                (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        } else if p <= 1 - low {
            let q = p - 0.5
            let r = q * q
            x =
                (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        } else {
            let q = (-2 * Foundation.log(1 - p)).squareRoot()
            x =
                -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
                / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let error = 0.5 * erfc(-x / 2.squareRoot()) - p
        let u = error * (2 * Double.pi).squareRoot() * Foundation.exp(x * x / 2)
        x -= u / (1 + x * u / 2)
        return x
    }
}

/// What is wrong with the input to the metrics.
public struct MetricsError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
