import Foundation
import Testing

@testable import ShoalMarket

struct AdvancedFeatureTests {
    func noise(_ count: Int, seed: UInt64) -> [Double] {
        var random = SeededGenerator(seed: seed)
        return (0..<count).map { _ in random.normal() }
    }

    @Test func waveletsAreOrthonormalAndSeeAlternation() {
        for wavelet in AdvancedIndicators.Wavelet.allCases {
            let x = noise(64, seed: 3)
            var approximation = x
            var energy = 0.0
            for _ in 0..<4 {
                let step = AdvancedIndicators.dwtStep(approximation, wavelet: wavelet)
                energy += step.detail.reduce(0) { $0 + $1 * $1 }
                approximation = step.approximation
            }
            energy += approximation.reduce(0) { $0 + $1 * $1 }
            let total = x.reduce(0) { $0 + $1 * $1 }
            #expect(abs(energy - total) < 1e-9 * total, "\(wavelet): energy is kept (\(energy) vs \(total))")
        }
        // An alternating series has all its energy in the finest level; a constant one none.
        let alternating = (0..<8).map { $0 % 2 == 0 ? 1.0 : -1.0 }
        let energies = AdvancedIndicators.waveletEnergy(returns: alternating, window: 8, levels: 2, wavelet: .haar)
        close([energies[0][7], energies[1][7]], [8, 0], "haar energies")
        let flat = AdvancedIndicators.waveletEnergy(
            returns: [Double](repeating: 0.5, count: 8), window: 8, levels: 2, wavelet: .daubechies4)
        close([flat[0][7], flat[1][7]], [0, 0], "d4 of a constant (two vanishing moments)")
        let ramp = AdvancedIndicators.dwtStep((0..<8).map(Double.init), wavelet: .daubechies4).detail
        // D4 wavelet kills linear trends away from the periodic wrap-around.
        close(Array(ramp.prefix(3)), [0, 0, 0], tolerance: 1e-12, "d4 of a ramp")
        #expect(energies[0][6].isNaN, "no value before a full window")
    }

    @Test func spectrumFindsATone() {
        // Eight cycles in 64 samples: frequency bin 8 of 32, the low band (bins 1…10).
        let tone = (0..<64).map { sin(2 * Double.pi * 8 * Double($0) / 64) }
        let spectrum = AdvancedIndicators.powerSpectrum(tone)
        #expect(spectrum.firstIndex(of: spectrum.max() ?? 0) == 7, "bin 8 holds the power")
        #expect(abs(spectrum.reduce(0, +) - tone.reduce(0) { $0 + $1 * $1 } / 2) < 1e-9, "Parseval (half the spectrum)")
        let fast = (0..<64).map { sin(2 * Double.pi * 28 * Double($0) / 64) }
        let bands = AdvancedIndicators.bandPower(returns: tone + fast, window: 64, bands: 3)
        close([bands[0][63], bands[1][63], bands[2][63]], [1, 0, 0], tolerance: 1e-9, "the first window is all low tone")
        close([bands[0][127], bands[1][127], bands[2][127]], [0, 0, 1], tolerance: 1e-9, "the last window is all high tone")
    }

    @Test func fractalMeasuresTellNoiseFromTrend() {
        let white = noise(2048, seed: 11)
        let hurst = AdvancedIndicators.hurst(returns: white, window: 512)
        let h = hurst.last ?? .nan
        #expect(h > 0.4 && h < 0.7, "independent returns have H near 0.5 (R/S leans high on short series): \(h)")
        // Returns that keep their sign for long stretches are persistent.
        var persistent: [Double] = []
        var level = 0.0
        for value in white {
            level = 0.98 * level + value
            persistent.append(level)
        }
        let hp = AdvancedIndicators.hurst(returns: persistent, window: 512).last ?? .nan
        #expect(hp > h + 0.2, "persistent returns score higher: \(hp) vs \(h)")

        var walk: [Double] = []
        var position = 100.0
        for value in white {
            position += value
            walk.append(position)
        }
        let walkD = AdvancedIndicators.higuchi(walk, window: 512).last ?? .nan
        let noiseD = AdvancedIndicators.higuchi(white, window: 512).last ?? .nan
        let lineD = AdvancedIndicators.higuchi((0..<512).map { Double($0) * 0.5 }, window: 512).last ?? .nan
        #expect(abs(walkD - 1.5) < 0.1, "a random walk has D near 1.5: \(walkD)")
        #expect(abs(noiseD - 2) < 0.1, "noise has D near 2: \(noiseD)")
        #expect(abs(lineD - 1) < 1e-9, "a line has D = 1: \(lineD)")
    }

    @Test func microstructureAndCrossAsset() {
        let quotes = [
            Quote(timestamp: 0, bid: 10, ask: 11, bidSize: 5, askSize: 7),
            Quote(timestamp: 1, bid: 10.5, ask: 11, bidSize: 3, askSize: 4),  // bid up: +3; ask same: −4 + 7
            Quote(timestamp: 2, bid: 10.5, ask: 10.8, bidSize: 2, askSize: 6),  // bid same: +2 − 3; ask down: −6
            Quote(timestamp: 3, bid: 11, ask: 10.9, bidSize: 1, askSize: 1),  // crossed: spread NaN
        ]
        let spread = AdvancedIndicators.spread(quotes)
        close(spread.absolute, [1, 0.5, 0.3, nan], tolerance: 1e-12, "spread")
        close(Array(spread.relative.prefix(1)), [1 / 10.5], "relative spread")
        close(AdvancedIndicators.orderFlowImbalance(Array(quotes.prefix(3)), window: 1), [nan, 6, -7], "ofi")
        close(AdvancedIndicators.orderFlowImbalance(Array(quotes.prefix(3)), window: 2), [nan, nan, -1], "ofi sum")

        let x = noise(100, seed: 5)
        let same = AdvancedIndicators.correlationAndBeta(x, x.map { 2 * $0 }, window: 20)
        close(Array(same.correlation.suffix(3)), [1, 1, 1], "correlation with itself")
        close(Array(same.beta.suffix(3)), [2, 2, 2], "beta of twice the moves")
        let opposite = AdvancedIndicators.correlationAndBeta(x, x.map { -$0 }, window: 20)
        close(Array(opposite.correlation.suffix(1)), [-1], "negated")
        #expect(same.correlation[18].isNaN && !same.correlation[19].isNaN)
    }

    /// Per-window definitions, written plainly, to hold the vectorised kernels to.
    static func referenceHurst(_ values: [Double]) -> Double {
        guard !values.contains(where: \.isNaN) else { return .nan }
        var xs: [Double] = []
        var ys: [Double] = []
        var size = 8
        while size <= values.count {
            var total = 0.0
            var used = 0
            for start in stride(from: 0, through: values.count - size, by: size) {
                let chunk = values[start..<start + size]
                let mean = chunk.reduce(0, +) / Double(size)
                var (cumulative, high, low, squares) = (0.0, -Double.infinity, Double.infinity, 0.0)
                for value in chunk {
                    cumulative += value - mean
                    high = max(high, cumulative)
                    low = min(low, cumulative)
                    squares += (value - mean) * (value - mean)
                }
                let deviation = (squares / Double(size)).squareRoot()
                if deviation > 0 {
                    total += (high - low) / deviation
                    used += 1
                }
            }
            if used > 0 {
                xs.append(log(Double(size)))
                ys.append(log(total / Double(used)))
            }
            size *= 2
        }
        return slope(xs, ys)
    }

    static func referenceHiguchi(_ values: [Double], maxDelay: Int) -> Double {
        let window = values.count
        var xs: [Double] = []
        var ys: [Double] = []
        for k in 1...maxDelay {
            var total = 0.0
            for m in 0..<k {
                let steps = (window - 1 - m) / k
                var length = 0.0
                for i in stride(from: 1, through: steps, by: 1) { length += abs(values[m + i * k] - values[m + (i - 1) * k]) }
                total += length * Double(window - 1) / (Double(steps * k) * Double(k))
            }
            xs.append(log(1 / Double(k)))
            ys.append(log(total / Double(k)))
        }
        return slope(xs, ys)
    }

    static func slope(_ xs: [Double], _ ys: [Double]) -> Double {
        guard xs.count >= 2 else { return .nan }
        let (mx, my) = (xs.reduce(0, +) / Double(xs.count), ys.reduce(0, +) / Double(ys.count))
        let sxy = zip(xs, ys).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        let sxx = xs.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }
        return sxy / sxx
    }

    @Test func theVectorisedWindowsMatchThePerWindowDefinitions() {
        var series = noise(301, seed: 21)
        series[150] = .nan  // windows holding it are NaN
        let (window, fractal) = (32, 64)
        for wavelet in AdvancedIndicators.Wavelet.allCases {
            let energies = AdvancedIndicators.waveletEnergy(returns: series, window: window, levels: 3, wavelet: wavelet)
            for end in (window - 1)..<series.count {
                var approximation = Array(series[(end - window + 1)...end])
                for level in 0..<3 {
                    let step = AdvancedIndicators.dwtStep(approximation, wavelet: wavelet)
                    let expected = step.detail.reduce(0) { $0 + $1 * $1 }
                    let got = energies[level][end]
                    #expect(
                        (expected.isNaN && got.isNaN) || abs(got - expected) <= 1e-12 * max(1, expected),
                        "\(wavelet) level \(level + 1) at \(end): \(got) vs \(expected)")
                    approximation = step.approximation
                }
            }
        }
        let bands = AdvancedIndicators.bandPower(returns: series, window: window, bands: 3)
        for end in (window - 1)..<series.count {
            let slice = Array(series[(end - window + 1)...end])
            let mean = slice.reduce(0, +) / Double(window)
            let spectrum = AdvancedIndicators.powerSpectrum(slice.map { $0 - mean })
            let total = spectrum.reduce(0, +)
            let shares = [spectrum[0..<5], spectrum[5..<10], spectrum[10..<16]].map { $0.reduce(0, +) / total }
            for band in 0..<3 {
                let got = bands[band][end]
                #expect((shares[band].isNaN && got.isNaN) || abs(got - shares[band]) < 1e-12, "band \(band) at \(end)")
            }
        }
        let hurst = AdvancedIndicators.hurst(returns: series, window: fractal)
        let higuchi = AdvancedIndicators.higuchi(series, window: fractal, maxDelay: 6)
        for end in (fractal - 1)..<series.count {
            let slice = Array(series[(end - fractal + 1)...end])
            let h = Self.referenceHurst(slice)
            let d = Self.referenceHiguchi(slice, maxDelay: 6)
            #expect((h.isNaN && hurst[end].isNaN) || abs(hurst[end] - h) < 1e-9, "hurst at \(end): \(hurst[end]) vs \(h)")
            #expect((d.isNaN && higuchi[end].isNaN) || abs(higuchi[end] - d) < 1e-9, "higuchi at \(end): \(higuchi[end]) vs \(d)")
        }
        #expect(hurst[150 + fractal - 1].isNaN && !hurst[149].isNaN && !hurst[150 + fractal].isNaN, "NaN stays in its windows")
    }

    @Test func theFullPipelineNeverLooksAhead() throws {
        let (series, _) = try SyntheticMarket().generate(bars: 400)
        let pipeline = FeaturePipeline(
            [MultiResolutionFeatures(), MicrostructureFeatures(), CrossAssetFeatures(reference: series[1], window: 30)])
        let before = pipeline.transform(series[0])
        var changed = series[0]
        for index in 301..<changed.count { changed.close[index] *= 1.3 }
        let after = pipeline.transform(changed)
        #expect(before.names.count == 18)
        for (name, (a, b)) in zip(before.names, zip(before.columns, after.columns)) {
            for row in 0...300 {
                #expect(a[row] == b[row] || (a[row].isNaN && b[row].isNaN), "\(name) at bar \(row) moved with later bars")
            }
        }
        #expect(before.column("hurst_128")?[200].isFinite == true)
        #expect(before.column("spread")?.allSatisfy(\.isNaN) == true, "no quotes: NaN, not zero")
    }
}
