import CShoalKernels
import Foundation

/// Technical indicators on columns of prices and volumes. Each returns a column as long as its
/// input, NaN where the indicator is not defined yet (its warm-up) or where its definition
/// divides by zero; never a silent zero. Every value at index i uses inputs at indices ≤ i only.
///
/// Conventions follow TA-Lib (and Wilder, where TA-Lib does), noted per function; where pandas
/// differs the note says how. The loops run on buffers (no bounds checks, no per-value
/// allocation), one pass per indicator.
public enum Indicators {
    /// A column of `count` values: NaN for the first `warmUp` (all of them by default), then
    /// whatever `fill` writes, which must be every value from `warmUp` on (NaN where undefined).
    @inline(__always)
    static func column(_ count: Int, warmUp: Int? = nil, _ fill: (UnsafeMutablePointer<Double>) -> Void) -> [Double] {
        [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress {
                base.initialize(repeating: .nan, count: min(count, max(0, warmUp ?? count)))
                fill(base)
            }
            initialized = count
        }
    }

    /// Simple moving average over `period` values; NaN for the first `period − 1`.
    public static func sma(_ values: [Double], period: Int) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        return values.withUnsafeBufferPointer { x in
            column(x.count, warmUp: x.count >= period ? period - 1 : nil) { out in
                guard x.count >= period else { return }
                let inverse = 1 / Double(period)
                var sum = 0.0
                for index in 0..<x.count {
                    sum += x[index]
                    if index >= period { sum -= x[index - period] }
                    if index >= period - 1 {
                        // Re-summed now and then so that rounding does not drift over long series.
                        if index % 4096 == 0 {
                            sum = 0
                            for j in (index - period + 1)...index { sum += x[j] }
                        }
                        out[index] = sum * inverse
                    }
                }
            }
        }
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
        values.withUnsafeBufferPointer { x in
            let seedEnd = start + period - 1
            return column(x.count, warmUp: start >= 0 && seedEnd < x.count ? seedEnd : nil) { out in
                smooth(x.baseAddress, x.count, period: period, alpha: alpha, start: start, into: out)
            }
        }
    }

    /// The seeded exponential smoothing of `x[start...]` into `out` (untouched before the seed).
    @inline(__always)
    static func smooth(
        _ x: UnsafePointer<Double>?, _ count: Int, period: Int, alpha: Double, start: Int, into out: UnsafeMutablePointer<Double>
    ) {
        let seedEnd = start + period - 1
        guard let x, start >= 0, seedEnd < count else { return }
        var average = 0.0
        for index in start...seedEnd { average += x[index] }
        average /= Double(period)
        out[seedEnd] = average
        var index = seedEnd + 1
        while index < count {
            average += alpha * (x[index] - average)
            out[index] = average
            index += 1
        }
    }

    /// Bollinger Bands: the `period` SMA ± `deviations` × the population standard deviation
    /// (TA-Lib's; pandas' `rolling().std()` is the sample one, ddof = 1).
    public static func bollinger(
        _ values: [Double], period: Int = 20, deviations: Double = 2
    ) -> (
        upper: [Double], middle: [Double], lower: [Double]
    ) {
        let bands = bands(values, period: period, deviations: deviations)
        return (bands.upper, bands.middle, bands.lower)
    }

    /// Bollinger Bands and %B ((x − lower) / (upper − lower), NaN for a zero width) in one pass.
    static func bands(_ values: [Double], period: Int, deviations: Double) -> (
        upper: [Double], middle: [Double], lower: [Double], percent: [Double]
    ) {
        let count = values.count
        let warmUp = min(count, period - 1)
        var (upper, middle, lower, percent) = (
            column(count, warmUp: warmUp) { _ in }, column(count, warmUp: warmUp) { _ in },
            column(count, warmUp: warmUp) { _ in }, column(count, warmUp: warmUp) { _ in }
        )
        values.withUnsafeBufferPointer { x in
            upper.withUnsafeMutableBufferPointer { u in
                middle.withUnsafeMutableBufferPointer { m in
                    lower.withUnsafeMutableBufferPointer { l in
                        percent.withUnsafeMutableBufferPointer { b in
                            forEachWindow(x, period: period, ddof: 0) { index, mean, deviation in
                                let (high, low) = (mean + deviations * deviation, mean - deviations * deviation)
                                u[index] = high
                                m[index] = mean
                                l[index] = low
                                b[index] = high - low > 0 ? (x[index] - low) / (high - low) : .nan
                            }
                        }
                    }
                }
            }
        }
        return (upper, middle, lower, percent)
    }

    /// The mean and standard deviation (divisor `period − ddof`) of each window of `period`
    /// values, NaN where the window holds a NaN, in one pass: sums of the values minus a shift
    /// (re-taken, and the sums recomputed, every few thousand bars so rounding stays small).
    public static func rollingMoments(_ values: [Double], period: Int, ddof: Int) -> (mean: [Double], deviation: [Double]) {
        precondition(period > ddof && period >= 1, "the period must exceed ddof")
        let count = values.count
        guard count >= period else { return (column(count) { _ in }, column(count) { _ in }) }
        var means = column(count, warmUp: period - 1) { _ in }
        var deviations = column(count, warmUp: period - 1) { _ in }
        values.withUnsafeBufferPointer { x in
            means.withUnsafeMutableBufferPointer { meanOut in
                deviations.withUnsafeMutableBufferPointer { deviationOut in
                    forEachWindow(x, period: period, ddof: ddof) { index, mean, deviation in
                        meanOut[index] = mean
                        deviationOut[index] = deviation
                    }
                }
            }
        }
        return (means, deviations)
    }

    /// Calls `body(index, mean, deviation)` for every window of `period` values, by its last
    /// index (NaN for a window holding a NaN), in one pass: sums of the values minus a shift
    /// (re-taken, and the sums recomputed, every 4096 bars so rounding stays small); windows
    /// after the last NaN (nearly all, usually) take a loop without NaN checks.
    @inline(__always)
    static func forEachWindow(
        _ x: UnsafeBufferPointer<Double>, period: Int, ddof: Int, _ body: (Int, Double, Double) -> Void
    ) {
        precondition(period > ddof && period >= 1, "the period must exceed ddof")
        let count = x.count
        guard count >= period else { return }
        var shift = 0.0
        var sum = 0.0
        var squares = 0.0
        var missing = 0
        func resum(endingAt index: Int) {
            let first = index - period + 1
            shift = 0
            for j in first...index where !x[j].isNaN {
                shift = x[j]
                break
            }
            sum = 0
            squares = 0
            missing = 0
            for j in first...index {
                let value = x[j]
                if value.isNaN {
                    missing += 1
                } else {
                    sum += value - shift
                    squares += (value - shift) * (value - shift)
                }
            }
        }
        // Multiplications by reciprocals: a division per value costs more.
        let inverse = 1 / Double(period)
        let inverseDivisor = 1 / Double(period - ddof)
        var lastNaN = -1
        for index in stride(from: count - 1, through: 0, by: -1) where x[index].isNaN {
            lastNaN = index
            break
        }
        let fastFrom = max(period - 1, lastNaN + period)
        for index in (period - 1)..<min(count, fastFrom) {
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
            guard missing == 0 else {
                body(index, .nan, .nan)
                continue
            }
            body(index, shift + sum * inverse, (max(0, squares - sum * sum * inverse) * inverseDivisor).squareRoot())
        }
        guard fastFrom < count else { return }
        for index in fastFrom..<count {
            if index == fastFrom || index % 4096 == 0 {
                resum(endingAt: index)
            } else {
                let incoming = x[index] - shift
                let outgoing = x[index - period] - shift
                sum += incoming - outgoing
                squares += incoming * incoming - outgoing * outgoing
            }
            body(index, shift + sum * inverse, (max(0, squares - sum * sum * inverse) * inverseDivisor).squareRoot())
        }
    }

    /// Wilder's RSI, TA-Lib's way: the first average gain and loss are the simple averages of
    /// the first `period` changes (defined from index `period` on), then Wilder-smoothed.
    /// RSI = 100 × gain / (gain + loss); where both are zero (no movement) TA-Lib gives 0 and
    /// so does this.
    public static func rsi(_ close: [Double], period: Int = 14) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        return close.withUnsafeBufferPointer { c in
            column(c.count, warmUp: c.count > period ? period : nil) { out in
                guard c.count > period else { return }
                var gain = 0.0
                var loss = 0.0
                for index in 1...period {
                    let change = c[index] - c[index - 1]
                    if change > 0 { gain += change } else { loss -= change }
                }
                let p = Double(period)
                gain /= p
                loss /= p
                out[period] = gain + loss == 0 ? 0 : 100 * gain / (gain + loss)
                var index = period + 1
                let inverse = 1 / p
                while index < c.count {
                    let change = c[index] - c[index - 1]
                    gain = (gain * (p - 1) + max(change, 0)) * inverse
                    loss = (loss * (p - 1) + max(-change, 0)) * inverse
                    out[index] = gain + loss == 0 ? 0 : 100 * gain / (gain + loss)
                    index += 1
                }
            }
        }
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
        let first = slow + signal - 2
        guard count >= slow, first < count else {
            let empty = column(count) { _ in }
            return (empty, empty, empty)
        }
        // One pass: both averages, the line, the signal (seeded with the average of the line's
        // first `signal` values, TA-Lib's way) and the histogram; NaN before `first` in all three.
        var line = column(count, warmUp: first) { _ in }
        var signalLine = column(count, warmUp: first) { _ in }
        var histogram = column(count, warmUp: first) { _ in }
        close.withUnsafeBufferPointer { c in
            line.withUnsafeMutableBufferPointer { lineOut in
                signalLine.withUnsafeMutableBufferPointer { signalOut in
                    histogram.withUnsafeMutableBufferPointer { histogramOut in
                        guard let x = c.baseAddress, let l = lineOut.baseAddress, let s = signalOut.baseAddress,
                            let h = histogramOut.baseAddress
                        else { return }
                        // The fast EMA seeded at slow − 1 from the `fast` values ending there; the slow from the start.
                        let (fastAlpha, slowAlpha) = (2 / Double(fast + 1), 2 / Double(slow + 1))
                        let signalAlpha = 2 / Double(signal + 1)
                        var fastAverage = 0.0
                        for i in (slow - fast)..<slow { fastAverage += x[i] }
                        fastAverage /= Double(fast)
                        var slowAverage = 0.0
                        for i in 0..<slow { slowAverage += x[i] }
                        slowAverage /= Double(slow)
                        var value = fastAverage - slowAverage
                        // The signal's seed: the line from slow − 1 through first.
                        var signalAverage = value
                        for i in slow..<(first + 1) {
                            fastAverage += fastAlpha * (x[i] - fastAverage)
                            slowAverage += slowAlpha * (x[i] - slowAverage)
                            value = fastAverage - slowAverage
                            signalAverage += value
                        }
                        signalAverage /= Double(signal)
                        l[first] = value
                        s[first] = signalAverage
                        h[first] = value - signalAverage
                        for i in (first + 1)..<count {
                            fastAverage += fastAlpha * (x[i] - fastAverage)
                            slowAverage += slowAlpha * (x[i] - slowAverage)
                            value = fastAverage - slowAverage
                            signalAverage += signalAlpha * (value - signalAverage)
                            l[i] = value
                            s[i] = signalAverage
                            h[i] = value - signalAverage
                        }
                    }
                }
            }
        }
        return (line, signalLine, histogram)
    }

    /// True range: high − low at the first bar, then max(high − low, |high − previous close|,
    /// |low − previous close|).
    public static func trueRange(high: [Double], low: [Double], close: [Double]) -> [Double] {
        high.withUnsafeBufferPointer { h in
            low.withUnsafeBufferPointer { l in
                close.withUnsafeBufferPointer { c in
                    column(c.count, warmUp: 0) { out in
                        guard c.count > 0 else { return }
                        out[0] = h[0] - l[0]
                        for index in 1..<c.count { out[index] = trueRange(h[index], l[index], after: c[index - 1]) }
                    }
                }
            }
        }
    }

    /// One bar's true range given the close before it.
    @inline(__always)
    static func trueRange(_ high: Double, _ low: Double, after previousClose: Double) -> Double {
        max(high - low, abs(high - previousClose), abs(low - previousClose))
    }

    /// Wilder's ATR, TA-Lib's way: the first value (at index `period`) is the average of the
    /// true ranges of bars 1…period, then Wilder-smoothed.
    public static func atr(high: [Double], low: [Double], close: [Double], period: Int = 14) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        return high.withUnsafeBufferPointer { h in
            low.withUnsafeBufferPointer { l in
                close.withUnsafeBufferPointer { c in
                    column(c.count, warmUp: c.count > period ? period : nil) { out in
                        guard c.count > period else { return }
                        // The true ranges of bars 1…period seed the average; then Wilder's smoothing, one pass.
                        func range(_ i: Int) -> Double { trueRange(h[i], l[i], after: c[i - 1]) }
                        var average = 0.0
                        for i in 1...period { average += range(i) }
                        average /= Double(period)
                        out[period] = average
                        let alpha = 1 / Double(period)
                        for i in (period + 1)..<c.count {
                            average += alpha * (range(i) - average)
                            out[i] = average
                        }
                    }
                }
            }
        }
    }

    /// On-balance volume (TA-Lib): the first bar's volume, then ± each bar's volume as the close
    /// rises or falls (unchanged on an equal close).
    public static func obv(close: [Double], volume: [Double]) -> [Double] {
        close.withUnsafeBufferPointer { c in
            volume.withUnsafeBufferPointer { v in
                column(c.count, warmUp: 0) { out in
                    guard c.count > 0 else { return }
                    var total = v[0]
                    out[0] = total
                    for index in 1..<c.count {
                        // ±volume by the close's direction without a branch to mispredict; a bar
                        // whose close does not move (or is NaN) adds nothing, whatever its volume
                        // (its volume's bits are masked to +0, so a NaN volume cannot leak in).
                        let (now, before) = (c[index], c[index - 1])
                        let up = Int64(now > before ? 1 : 0)
                        let down = Int64(now < before ? 1 : 0)
                        let mask = UInt64(bitPattern: -(up | down))
                        total += Double(up - down) * Double(bitPattern: v[index].bitPattern & mask)
                        out[index] = total
                    }
                }
            }
        }
    }

    /// Volume-weighted average price over the last `period` bars, of the typical price
    /// (high + low + close) / 3; NaN where those bars traded no volume.
    public static func vwap(high: [Double], low: [Double], close: [Double], volume: [Double], period: Int = 20) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        return high.withUnsafeBufferPointer { h in
            low.withUnsafeBufferPointer { l in
                close.withUnsafeBufferPointer { c in
                    volume.withUnsafeBufferPointer { v in
                        column(c.count, warmUp: min(c.count, period - 1)) { out in
                            var weighted = 0.0
                            var total = 0.0
                            for index in 0..<c.count {
                                weighted += (h[index] + l[index] + c[index]) / 3 * v[index]
                                total += v[index]
                                if index >= period {
                                    let old = index - period
                                    weighted -= (h[old] + l[old] + c[old]) / 3 * v[old]
                                    total -= v[old]
                                }
                                if index >= period - 1 { out[index] = total > 0 ? weighted / total : .nan }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Rate of change in percent over `period` bars: 100 × (x − x[−period]) / x[−period];
    /// NaN where the earlier value is zero.
    public static func rateOfChange(_ values: [Double], period: Int = 14) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        return values.withUnsafeBufferPointer { x in
            column(x.count, warmUp: x.count > period ? period : nil) { out in
                guard x.count > period else { return }
                for index in period..<x.count {
                    let earlier = x[index - period]
                    out[index] = earlier == 0 ? .nan : 100 * (x[index] - earlier) / earlier
                }
            }
        }
    }

    /// Garman–Klass volatility over `period` bars (per bar, not annualised):
    /// sqrt(mean(½ ln(H/L)² − (2 ln 2 − 1) ln(C/O)²)).
    public static func garmanKlass(open: [Double], high: [Double], low: [Double], close: [Double], period: Int = 20) -> [Double] {
        precondition(period >= 1, "period must be at least 1")
        let k = 2 * log(2.0) - 1
        let count = close.count
        // log(high / low) and log(close / open) by the vectorised kernel (NaN unless all four
        // prices are positive), then the terms in place.
        var terms = high.withUnsafeBufferPointer { h in
            low.withUnsafeBufferPointer { l in
                column(count, warmUp: 0) { out in shoal_log_ratios(h.baseAddress, l.baseAddress, count, out) }
            }
        }
        let body = close.withUnsafeBufferPointer { c in
            open.withUnsafeBufferPointer { o in
                column(count, warmUp: 0) { out in shoal_log_ratios(c.baseAddress, o.baseAddress, count, out) }
            }
        }
        body.withUnsafeBufferPointer { b in
            terms.withUnsafeMutableBufferPointer { t in
                for index in 0..<count { t[index] = 0.5 * t[index] * t[index] - k * b[index] * b[index] }
            }
        }
        var mean = sma(terms, period: period)
        mean.withUnsafeMutableBufferPointer { m in
            for index in m.indices { m[index] = m[index].isNaN || m[index] < 0 ? .nan : m[index].squareRoot() }
        }
        return mean
    }

    /// Log returns ln(close / previous close); NaN at the first bar and around non-positive prices.
    public static func logReturns(_ close: [Double]) -> [Double] {
        close.withUnsafeBufferPointer { c in
            column(c.count, warmUp: min(1, c.count)) { out in
                guard c.count > 1, let base = c.baseAddress else { return }
                shoal_log_ratios(base + 1, base, c.count - 1, out + 1)
            }
        }
    }

    /// Rolling standard deviation (sample, ddof = 1, as pandas) over `period` values.
    public static func rollingStandardDeviation(_ values: [Double], period: Int) -> [Double] {
        precondition(period >= 2, "a standard deviation needs a period of at least 2")
        // The deviations alone (no column of means).
        return values.withUnsafeBufferPointer { x in
            column(x.count, warmUp: min(x.count, period - 1)) { out in
                forEachWindow(x, period: period, ddof: 1) { index, _, deviation in out[index] = deviation }
            }
        }
    }

    /// Volatility ratio: the standard deviation of log returns over the last `short` bars over
    /// that over the last `long` bars (above 1: volatility is rising).
    public static func volatilityRatio(_ close: [Double], short: Int = 10, long: Int = 50) -> [Double] {
        volatilityRatio(returns: logReturns(close), short: short, long: long)
    }

    /// The volatility ratio from log returns already computed: the short window's deviations
    /// first, then the long window's pass writes the ratio.
    public static func volatilityRatio(returns: [Double], short: Int = 10, long: Int = 50) -> [Double] {
        precondition(short >= 2 && long > short, "volatility ratio needs 2 <= short < long")
        let near = rollingStandardDeviation(returns, period: short)
        return returns.withUnsafeBufferPointer { x in
            near.withUnsafeBufferPointer { n in
                column(x.count, warmUp: min(x.count, long - 1)) { out in
                    forEachWindow(x, period: long, ddof: 1) { index, _, far in out[index] = far > 0 ? n[index] / far : .nan }
                }
            }
        }
    }
}
