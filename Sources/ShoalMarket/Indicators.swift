import Foundation

/// Technical indicators on columns of prices and volumes. Each returns a column as long as its
/// input, NaN where the indicator is not defined yet (its warm-up) or where its definition
/// divides by zero; never a silent zero. Every value at index i uses inputs at indices ≤ i only.
///
/// Conventions follow TA-Lib (and Wilder, where TA-Lib does), noted per function; where pandas
/// differs the note says how.
public enum Indicators {
    /// Simple moving average over `period` values; NaN for the first `period − 1`.
    public static func sma(_ values: [Double], period: Int) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        var output = [Double](repeating: .nan, count: values.count)
        guard values.count >= period else { return output }
        var sum = 0.0
        for index in 0..<values.count {
            sum += values[index]
            if index >= period { sum -= values[index - period] }
            if index >= period - 1 {
                // Re-summed now and then so that rounding does not drift over long series.
                if index % 4096 == 0 { sum = values[(index - period + 1)...index].reduce(0, +) }
                output[index] = sum / Double(period)
            }
        }
        return output
    }

    /// Exponential moving average with α = 2 / (period + 1), seeded (TA-Lib's way) with the
    /// simple average of the first `period` values at index `period − 1`. (pandas'
    /// `ewm(span=period, adjust=False)` seeds with the first value instead.)
    /// - Parameter start: the index of the first value to use (earlier ones are ignored).
    public static func ema(_ values: [Double], period: Int, start: Int = 0) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        return smoothed(values, period: period, alpha: 2 / Double(period + 1), start: start)
    }

    /// Wilder's smoothing (α = 1 / period), seeded with the simple average of the first `period` values.
    public static func wilder(_ values: [Double], period: Int, start: Int = 0) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        return smoothed(values, period: period, alpha: 1 / Double(period), start: start)
    }

    private static func smoothed(_ values: [Double], period: Int, alpha: Double, start: Int) -> [Double] {
        var output = [Double](repeating: .nan, count: values.count)
        let seedEnd = start + period - 1
        guard seedEnd < values.count else { return output }
        values.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { out in
                var average = x[start...seedEnd].reduce(0, +) / Double(period)
                out[seedEnd] = average
                var index = seedEnd + 1
                while index < x.count {
                    average += alpha * (x[index] - average)
                    out[index] = average
                    index += 1
                }
            }
        }
        return output
    }

    /// Bollinger Bands: the `period` SMA ± `deviations` × the population standard deviation
    /// (TA-Lib's; pandas' `rolling().std()` is the sample one, ddof = 1).
    public static func bollinger(
        _ values: [Double], period: Int = 20, deviations: Double = 2
    ) -> (
        upper: [Double], middle: [Double], lower: [Double]
    ) {
        let moments = rollingMoments(values, period: period, ddof: 0)
        var upper = [Double](repeating: .nan, count: values.count)
        var lower = upper
        for index in 0..<values.count where !moments.deviation[index].isNaN {
            upper[index] = moments.mean[index] + deviations * moments.deviation[index]
            lower[index] = moments.mean[index] - deviations * moments.deviation[index]
        }
        return (upper, moments.mean, lower)
    }

    /// The mean and standard deviation (divisor `period − ddof`) of each window of `period`
    /// values, NaN where the window holds a NaN, in one pass: sums of the values minus a shift
    /// (re-taken, and the sums recomputed, every few thousand bars so rounding stays small).
    public static func rollingMoments(_ values: [Double], period: Int, ddof: Int) -> (mean: [Double], deviation: [Double]) {
        precondition(period > ddof && period >= 1, "the period must exceed ddof")
        let count = values.count
        var means = [Double](repeating: .nan, count: count)
        var deviations = [Double](repeating: .nan, count: count)
        guard count >= period else { return (means, deviations) }
        values.withUnsafeBufferPointer { x in
            means.withUnsafeMutableBufferPointer { meanOut in
                deviations.withUnsafeMutableBufferPointer { deviationOut in
                    var shift = 0.0
                    var sum = 0.0
                    var squares = 0.0
                    var missing = 0
                    func resum(endingAt index: Int) {
                        let first = index - period + 1
                        shift = x[first...index].first { !$0.isNaN } ?? 0
                        sum = 0
                        squares = 0
                        missing = 0
                        for value in x[first...index] {
                            if value.isNaN {
                                missing += 1
                            } else {
                                sum += value - shift
                                squares += (value - shift) * (value - shift)
                            }
                        }
                    }
                    let p = Double(period)
                    let divisor = Double(period - ddof)
                    for index in (period - 1)..<count {
                        if index == period - 1 || index % 4096 == 0 {
                            resum(endingAt: index)
                        } else {
                            let incoming = x[index]
                            let outgoing = x[index - period]
                            if incoming.isNaN {
                                missing += 1
                            } else {
                                sum += incoming - shift
                                squares += (incoming - shift) * (incoming - shift)
                            }
                            if outgoing.isNaN {
                                missing -= 1
                            } else {
                                sum -= outgoing - shift
                                squares -= (outgoing - shift) * (outgoing - shift)
                            }
                        }
                        guard missing == 0 else { continue }
                        meanOut[index] = shift + sum / p
                        deviationOut[index] = (max(0, squares - sum * sum / p) / divisor).squareRoot()
                    }
                }
            }
        }
        return (means, deviations)
    }

    /// Wilder's RSI, TA-Lib's way: the first average gain and loss are the simple averages of
    /// the first `period` changes (defined from index `period` on), then Wilder-smoothed.
    /// RSI = 100 × gain / (gain + loss); where both are zero (no movement) TA-Lib gives 0 and
    /// so does this.
    public static func rsi(_ close: [Double], period: Int = 14) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        var output = [Double](repeating: .nan, count: close.count)
        guard close.count > period else { return output }
        var gain = 0.0
        var loss = 0.0
        for index in 1...period {
            let change = close[index] - close[index - 1]
            if change > 0 { gain += change } else { loss -= change }
        }
        gain /= Double(period)
        loss /= Double(period)
        func value() -> Double { gain + loss == 0 ? 0 : 100 * gain / (gain + loss) }
        output[period] = value()
        var index = period + 1
        while index < close.count {
            let change = close[index] - close[index - 1]
            gain = (gain * Double(period - 1) + max(change, 0)) / Double(period)
            loss = (loss * Double(period - 1) + max(-change, 0)) / Double(period)
            output[index] = value()
            index += 1
        }
        return output
    }

    /// MACD, TA-Lib's way: both EMAs start together at index `slow − 1` (the fast one seeded
    /// with the average of the `fast` values ending there), line = fast − slow, signal = the
    /// `signal`-period EMA of the line, histogram = line − signal; all three from index
    /// `slow + signal − 2` on.
    public static func macd(
        _ close: [Double], fast: Int = 12, slow: Int = 26, signal: Int = 9
    ) -> (
        line: [Double], signal: [Double], histogram: [Double]
    ) {
        precondition(fast >= 1 && slow > fast && signal >= 1, "MACD needs 1 <= fast < slow and signal >= 1")
        let count = close.count
        var line = [Double](repeating: .nan, count: count)
        var signalLine = line
        var histogram = line
        guard count >= slow else { return (line, signalLine, histogram) }
        let fastEMA = ema(close, period: fast, start: slow - fast)
        let slowEMA = ema(close, period: slow)
        for index in (slow - 1)..<count { line[index] = fastEMA[index] - slowEMA[index] }
        let smoothed = ema(line, period: signal, start: slow - 1)
        let first = slow + signal - 2
        guard first < count else { return ([Double](repeating: .nan, count: count), signalLine, histogram) }
        for index in 0..<count {
            if index < first {
                line[index] = .nan
            } else {
                signalLine[index] = smoothed[index]
                histogram[index] = line[index] - smoothed[index]
            }
        }
        return (line, signalLine, histogram)
    }

    /// True range: high − low at the first bar, then max(high − low, |high − previous close|,
    /// |low − previous close|).
    public static func trueRange(high: [Double], low: [Double], close: [Double]) -> [Double] {
        var output = [Double](repeating: .nan, count: close.count)
        guard !close.isEmpty else { return output }
        output[0] = high[0] - low[0]
        for index in 1..<close.count {
            let previous = close[index - 1]
            output[index] = max(high[index] - low[index], abs(high[index] - previous), abs(low[index] - previous))
        }
        return output
    }

    /// Wilder's ATR, TA-Lib's way: the first value (at index `period`) is the average of the
    /// true ranges of bars 1…period, then Wilder-smoothed.
    public static func atr(high: [Double], low: [Double], close: [Double], period: Int = 14) -> [Double] {
        wilder(trueRange(high: high, low: low, close: close), period: period, start: 1)
    }

    /// On-balance volume (TA-Lib): the first bar's volume, then ± each bar's volume as the close
    /// rises or falls (unchanged on an equal close).
    public static func obv(close: [Double], volume: [Double]) -> [Double] {
        var output = [Double](repeating: .nan, count: close.count)
        guard !close.isEmpty else { return output }
        var total = volume[0]
        output[0] = total
        for index in 1..<close.count {
            if close[index] > close[index - 1] {
                total += volume[index]
            } else if close[index] < close[index - 1] {
                total -= volume[index]
            }
            output[index] = total
        }
        return output
    }

    /// Volume-weighted average price over the last `period` bars, of the typical price
    /// (high + low + close) / 3; NaN where those bars traded no volume.
    public static func vwap(high: [Double], low: [Double], close: [Double], volume: [Double], period: Int = 20) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        var output = [Double](repeating: .nan, count: close.count)
        var weighted = 0.0
        var total = 0.0
        for index in 0..<close.count {
            weighted += (high[index] + low[index] + close[index]) / 3 * volume[index]
            total += volume[index]
            if index >= period {
                let old = index - period
                weighted -= (high[old] + low[old] + close[old]) / 3 * volume[old]
                total -= volume[old]
            }
            if index >= period - 1 { output[index] = total > 0 ? weighted / total : .nan }
        }
        return output
    }

    /// Rate of change in percent over `period` bars: 100 × (x − x[−period]) / x[−period];
    /// NaN where the earlier value is zero.
    public static func rateOfChange(_ values: [Double], period: Int = 14) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        var output = [Double](repeating: .nan, count: values.count)
        guard values.count > period else { return output }
        for index in period..<values.count {
            let earlier = values[index - period]
            output[index] = earlier == 0 ? .nan : 100 * (values[index] - earlier) / earlier
        }
        return output
    }

    /// Garman–Klass volatility over `period` bars (per bar, not annualised):
    /// sqrt(mean(½ ln(H/L)² − (2 ln 2 − 1) ln(C/O)²)).
    public static func garmanKlass(open: [Double], high: [Double], low: [Double], close: [Double], period: Int = 20) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        let count = close.count
        var terms = [Double](repeating: .nan, count: count)
        let k = 2 * log(2.0) - 1
        for index in 0..<count {
            guard open[index] > 0, high[index] > 0, low[index] > 0, close[index] > 0 else { continue }
            let range = log(high[index] / low[index])
            let body = log(close[index] / open[index])
            terms[index] = 0.5 * range * range - k * body * body
        }
        let mean = sma(terms, period: period)
        return mean.map { $0.isNaN || $0 < 0 ? .nan : $0.squareRoot() }
    }

    /// Log returns ln(close / previous close); NaN at the first bar and around non-positive prices.
    public static func logReturns(_ close: [Double]) -> [Double] {
        var output = [Double](repeating: .nan, count: close.count)
        guard close.count > 1 else { return output }
        for index in 1..<close.count where close[index] > 0 && close[index - 1] > 0 {
            output[index] = log(close[index] / close[index - 1])
        }
        return output
    }

    /// Rolling standard deviation (sample, ddof = 1, as pandas) over `period` values.
    public static func rollingStandardDeviation(_ values: [Double], period: Int) -> [Double] {
        precondition(period >= 2, "a standard deviation needs a period of at least 2")
        return rollingMoments(values, period: period, ddof: 1).deviation
    }

    /// Volatility ratio: the standard deviation of log returns over the last `short` bars over
    /// that over the last `long` bars (above 1: volatility is rising).
    public static func volatilityRatio(_ close: [Double], short: Int = 10, long: Int = 50) -> [Double] {
        volatilityRatio(returns: logReturns(close), short: short, long: long)
    }

    /// The volatility ratio from log returns already computed.
    public static func volatilityRatio(returns: [Double], short: Int = 10, long: Int = 50) -> [Double] {
        precondition(short >= 2 && long > short, "volatility ratio needs 2 <= short < long")
        let near = rollingStandardDeviation(returns, period: short)
        let far = rollingStandardDeviation(returns, period: long)
        return zip(near, far).map { $1 > 0 ? $0 / $1 : .nan }
    }
}
