import CShoalKernels
import Foundation

/// Multi-resolution, spectral, fractal, microstructure and cross-asset measures over rolling
/// windows. Like `Indicators`, each value uses data up to its own bar only, and the warm-up is NaN.
public enum AdvancedIndicators {
    // MARK: wavelets

    public enum Wavelet: String, Sendable, CaseIterable {
        case haar
        /// Daubechies-4 (two vanishing moments), periodic boundary.
        case daubechies4
    }

    static let d4Low: [Double] = {
        let s3 = 3.0.squareRoot()
        let n = 4 * 2.0.squareRoot()
        return [(1 + s3) / n, (3 + s3) / n, (3 - s3) / n, (1 - s3) / n]
    }()

    /// One level of an orthonormal discrete wavelet transform with periodic boundaries.
    /// - Returns: the approximation and detail coefficients (half as many each).
    public static func dwtStep(_ x: [Double], wavelet: Wavelet) -> (approximation: [Double], detail: [Double]) {
        let half = x.count / 2
        var approximation = [Double](repeating: 0, count: half)
        var detail = [Double](repeating: 0, count: half)
        switch wavelet {
        case .haar:
            let scale = 0.5.squareRoot()
            for i in 0..<half {
                approximation[i] = (x[2 * i] + x[2 * i + 1]) * scale
                detail[i] = (x[2 * i] - x[2 * i + 1]) * scale
            }
        case .daubechies4:
            let h = d4Low
            // High-pass: g[k] = (−1)^k h[3 − k].
            let g = [h[3], -h[2], h[1], -h[0]]
            for i in 0..<half {
                var a = 0.0
                var d = 0.0
                for k in 0..<4 {
                    let value = x[(2 * i + k) % x.count]
                    a += h[k] * value
                    d += g[k] * value
                }
                approximation[i] = a
                detail[i] = d
            }
        }
        return (approximation, detail)
    }

    /// The energy (sum of squared detail coefficients) of each level 1…`levels` of the wavelet
    /// transform of the last `window` log returns (window a power of two in 2^levels…256).
    /// - Returns: one column per level, finest first.
    public static func waveletEnergy(returns: [Double], window: Int = 64, levels: Int = 4, wavelet: Wavelet = .haar) -> [[Double]]
    {
        precondition(
            window > 0 && window & (window - 1) == 0 && window >= 1 << levels && levels >= 1 && window <= 256,
            "window must be a power of two in 2^levels…256")
        return columns(levels, returns.count) { out in
            returns.withUnsafeBufferPointer { x in
                guard let base = x.baseAddress, x.count >= window else { return }
                shoal_wavelet_energies(base, x.count, window, levels, wavelet == .daubechies4 ? 1 : 0, out)
            }
        }
    }

    /// `count` NaN columns of `length` that `fill` writes into, one after another.
    static func columns(_ count: Int, _ length: Int, _ fill: (UnsafeMutablePointer<Double>) -> Void) -> [[Double]] {
        var flat = [Double](repeating: .nan, count: count * length)
        flat.withUnsafeMutableBufferPointer { if let base = $0.baseAddress { fill(base) } }
        return (0..<count).map { Array(flat[($0 * length)..<(($0 + 1) * length)]) }
    }

    // MARK: spectrum

    /// The power spectrum |X_k|² / n of a real window for k = 1…n/2 (the mean, k = 0, left
    /// out), by a radix-2 FFT (n a power of two).
    public static func powerSpectrum(_ x: [Double]) -> [Double] {
        let n = x.count
        precondition(n >= 2 && n & (n - 1) == 0, "the FFT length must be a power of two")
        var real = x
        var imaginary = [Double](repeating: 0, count: n)
        // Bit-reversal permutation.
        var j = 0
        for i in 1..<n {
            var bit = n >> 1
            while j & bit != 0 {
                j ^= bit
                bit >>= 1
            }
            j |= bit
            if i < j {
                real.swapAt(i, j)
                imaginary.swapAt(i, j)
            }
        }
        var length = 2
        while length <= n {
            let angle = -2 * Double.pi / Double(length)
            for start in stride(from: 0, to: n, by: length) {
                for k in 0..<length / 2 {
                    let wr = cos(angle * Double(k))
                    let wi = sin(angle * Double(k))
                    let a = start + k
                    let b = a + length / 2
                    let tr = wr * real[b] - wi * imaginary[b]
                    let ti = wr * imaginary[b] + wi * real[b]
                    real[b] = real[a] - tr
                    imaginary[b] = imaginary[a] - ti
                    real[a] += tr
                    imaginary[a] += ti
                }
            }
            length <<= 1
        }
        return (1...n / 2).map { (real[$0] * real[$0] + imaginary[$0] * imaginary[$0]) / Double(n) }
    }

    /// Spectral power of the last `window` log returns in `bands` equal bands of frequency
    /// (low to high), each as a share of the total (window a power of two in 4…256).
    public static func bandPower(returns: [Double], window: Int = 64, bands: Int = 3) -> [[Double]] {
        precondition(
            window >= 4 && window <= 256 && window & (window - 1) == 0 && bands >= 1 && bands <= window / 2,
            "bad window or band count")
        return columns(bands, returns.count) { out in
            returns.withUnsafeBufferPointer { x in
                guard let base = x.baseAddress, x.count >= window else { return }
                shoal_band_powers(base, x.count, window, bands, out)
            }
        }
    }

    // MARK: fractal measures

    /// The Hurst exponent of the last `window` log returns by rescaled range: the slope of
    /// log(mean R/S) against log(n) over sub-series lengths n = 8, 16, … up to `window`
    /// (about 0.5 for independent returns, above for persistent ones; window 16…1024).
    public static func hurst(returns: [Double], window: Int = 128) -> [Double] {
        precondition(window >= 16 && window <= 1024, "the Hurst window must be in 16…1024")
        return columns(1, returns.count) { out in
            returns.withUnsafeBufferPointer { x in
                guard let base = x.baseAddress, x.count >= window else { return }
                shoal_hurst(base, x.count, window, out)
            }
        }[0]
    }

    /// Higuchi's fractal dimension of the last `window` closes, with curve lengths at delays
    /// 1…`maxDelay` (at most 32): about 1 for a smooth line, about 1.5 for a random walk, 2 for noise.
    public static func higuchi(_ values: [Double], window: Int = 128, maxDelay: Int = 8) -> [Double] {
        precondition(
            maxDelay >= 2 && maxDelay <= 32 && window > 2 * maxDelay, "Higuchi needs maxDelay in 2…32 and window > 2 × maxDelay")
        return columns(1, values.count) { out in
            values.withUnsafeBufferPointer { x in
                guard let base = x.baseAddress, x.count >= window else { return }
                shoal_higuchi(base, x.count, window, maxDelay, out)
            }
        }[0]
    }

    // MARK: microstructure

    /// The quoted spread, ask − bid, and the relative spread, (ask − bid) / mid.
    public static func spread(_ quotes: [Quote]) -> (absolute: [Double], relative: [Double]) {
        let absolute = quotes.map { $0.ask >= $0.bid && $0.bid > 0 ? $0.ask - $0.bid : .nan }
        let relative = quotes.map { $0.ask >= $0.bid && $0.bid > 0 ? ($0.ask - $0.bid) / (0.5 * ($0.ask + $0.bid)) : .nan }
        return (absolute, relative)
    }

    /// Order-flow imbalance (Cont, Kukanov and Stoikov), summed over the last `window` quotes:
    /// each quote adds the bid size when the bid rose or held, takes the previous bid size when
    /// it fell or held, and the reverse for the ask.
    public static func orderFlowImbalance(_ quotes: [Quote], window: Int = 20) -> [Double] {
        precondition(window >= 1, "window must be at least 1")
        var events = [Double](repeating: .nan, count: quotes.count)
        for i in 1..<max(1, quotes.count) {
            let now = quotes[i]
            let before = quotes[i - 1]
            var e = 0.0
            if now.bid >= before.bid { e += now.bidSize }
            if now.bid <= before.bid { e -= before.bidSize }
            if now.ask <= before.ask { e -= now.askSize }
            if now.ask >= before.ask { e += before.askSize }
            events[i] = e
        }
        var output = [Double](repeating: .nan, count: quotes.count)
        guard quotes.count > window else { return output }
        var sum = events[1...window].reduce(0, +)
        output[window] = sum
        for i in (window + 1)..<quotes.count {
            sum += events[i] - events[i - window]
            output[i] = sum
        }
        return output
    }

    // MARK: cross-asset

    /// Rolling Pearson correlation of two return series over `window` bars, and the beta of `y`
    /// on `x` (cov / var x): running sums over the window (re-summed every 4096 bars so that
    /// rounding stays small), NaN where the window holds a NaN.
    public static func correlationAndBeta(
        _ x: [Double], _ y: [Double], window: Int = 60
    ) -> (correlation: [Double], beta: [Double]) {
        precondition(window >= 3 && x.count == y.count, "correlation needs equal lengths and a window of at least 3")
        var correlation = [Double](repeating: .nan, count: x.count)
        var beta = correlation
        guard x.count >= window else { return (correlation, beta) }
        x.withUnsafeBufferPointer { x in
            y.withUnsafeBufferPointer { y in
                correlation.withUnsafeMutableBufferPointer { correlationOut in
                    beta.withUnsafeMutableBufferPointer { betaOut in
                        // Sums of x, y, x², y², xy over the window, shifted by the window's first values.
                        var (sx, sy, sxx, syy, sxy) = (0.0, 0.0, 0.0, 0.0, 0.0)
                        var (shiftX, shiftY) = (0.0, 0.0)
                        var missing = 0
                        func add(_ i: Int, _ sign: Double) {
                            guard !x[i].isNaN && !y[i].isNaN else {
                                missing += sign > 0 ? 1 : -1
                                return
                            }
                            let (a, b) = (x[i] - shiftX, y[i] - shiftY)
                            sx += sign * a
                            sy += sign * b
                            sxx += sign * a * a
                            syy += sign * b * b
                            sxy += sign * a * b
                        }
                        let n = Double(window)
                        for end in (window - 1)..<x.count {
                            if end == window - 1 || end % 4096 == 0 {
                                let first = end - window + 1
                                shiftX = x[first].isNaN ? 0 : x[first]
                                shiftY = y[first].isNaN ? 0 : y[first]
                                (sx, sy, sxx, syy, sxy) = (0, 0, 0, 0, 0)
                                missing = 0
                                for i in first...end { add(i, 1) }
                            } else {
                                add(end, 1)
                                add(end - window, -1)
                            }
                            guard missing == 0 else { continue }
                            let cxy = sxy - sx * sy / n
                            let cxx = sxx - sx * sx / n
                            let cyy = syy - sy * sy / n
                            if cxx > 0 && cyy > 0 { correlationOut[end] = cxy / (cxx * cyy).squareRoot() }
                            if cxx > 0 { betaOut[end] = cxy / cxx }
                        }
                    }
                }
            }
        }
        return (correlation, beta)
    }
}

/// Wavelet energies (Haar and Daubechies-4), FFT band powers, Hurst exponent and Higuchi
/// fractal dimension of one instrument, over rolling windows of its log returns.
public struct MultiResolutionFeatures: FeatureTransformer {
    public var window = 64
    public var levels = 4
    public var fractalWindow = 128
    public init() {}
    public var names: [String] {
        (1...levels).map { "haar_energy_\($0)" } + (1...levels).map { "d4_energy_\($0)" } + ["fft_low", "fft_mid", "fft_high"]
            + ["hurst_\(fractalWindow)", "higuchi_\(fractalWindow)"]
    }
    public func transform(_ data: MarketData) -> [[Double]] {
        let returns = Indicators.logReturns(data.close)
        return AdvancedIndicators.waveletEnergy(returns: returns, window: window, levels: levels, wavelet: .haar)
            + AdvancedIndicators.waveletEnergy(returns: returns, window: window, levels: levels, wavelet: .daubechies4)
            + AdvancedIndicators.bandPower(returns: returns, window: window, bands: 3)
            + [
                AdvancedIndicators.hurst(returns: returns, window: fractalWindow),
                AdvancedIndicators.higuchi(data.close, window: fractalWindow),
            ]
    }
}

/// Bid-ask spread and order-flow imbalance, for instruments with quotes (NaN columns otherwise).
public struct MicrostructureFeatures: FeatureTransformer {
    public var window = 20
    public init() {}
    public var names: [String] { ["spread", "relative_spread", "order_flow_imbalance_\(window)"] }
    public func transform(_ data: MarketData) -> [[Double]] {
        guard data.quotes.count == data.count, data.count > 0 else {
            return [[Double]](repeating: [Double](repeating: .nan, count: data.count), count: 3)
        }
        let spread = AdvancedIndicators.spread(data.quotes)
        return [spread.absolute, spread.relative, AdvancedIndicators.orderFlowImbalance(data.quotes, window: window)]
    }
}

/// Rolling correlation and beta of an instrument's returns with a reference instrument (the
/// market, or another asset), aligned bar for bar.
public struct CrossAssetFeatures: FeatureTransformer {
    public var reference: MarketData
    public var window = 60
    public init(reference: MarketData, window: Int = 60) {
        self.reference = reference
        self.window = window
    }
    public var names: [String] { ["correlation_\(reference.symbol)", "beta_\(reference.symbol)"] }
    public func transform(_ data: MarketData) -> [[Double]] {
        guard reference.timestamps == data.timestamps else {
            // Not on the same clock: align them first (DataValidator.align).
            return [[Double]](repeating: [Double](repeating: .nan, count: data.count), count: 2)
        }
        let result = AdvancedIndicators.correlationAndBeta(
            Indicators.logReturns(reference.close), Indicators.logReturns(data.close), window: window)
        return [result.correlation, result.beta]
    }
}
