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
