import Foundation
import Shoal

/// Monte Carlo pricing of options on a geometric Brownian motion, as cluster tasks: each chunk
/// simulates its own paths from its own seed, and merge tasks sum chunk summaries pairwise.
enum MonteCarlo {
    /// One chunk of paths to simulate.
    struct Chunk: Codable, Sendable {
        var seed: UInt64
        var paths: Int
        var steps: Int
        var spot: Double
        var rate: Double
        var volatility: Double
        var strike: Double
        var maturity: Double
    }

    /// Sums over simulated paths; merging two adds them.
    struct Summary: Codable, Sendable {
        var paths = 0
        var europeanSum = 0.0
        var europeanSquares = 0.0
        var asianSum = 0.0
        var asianSquares = 0.0
        /// Counts of terminal log returns in `bins` equal bins over [-1, 1].
        var histogram = [Int](repeating: 0, count: Summary.bins)
        var nodes: Set<String> = []

        static let bins = 400

        mutating func merge(_ other: Summary) {
            paths += other.paths
            europeanSum += other.europeanSum
            europeanSquares += other.europeanSquares
            asianSum += other.asianSum
            asianSquares += other.asianSquares
            for index in histogram.indices { histogram[index] += other.histogram[index] }
            nodes.formUnion(other.nodes)
        }
    }

    struct Pair: Codable, Sendable {
        var left: ObjectRef<Summary>
        var right: ObjectRef<Summary>
    }

    static let simulate = RemoteTask("trading.montecarlo.simulate") { (chunk: Chunk) in run(chunk) }
    static let merge = RemoteTask("trading.montecarlo.merge") { (pair: Pair) in
        var left = try await pair.left.get()
        left.merge(try await pair.right.get())
        return left
    }

    static let tasks: [any AnyRemoteTask] = [simulate, merge]

    /// Simulates a chunk of paths under the risk-neutral measure, daily steps.
    static func run(_ chunk: Chunk) -> Summary {
        var generator = Xoshiro256(seed: chunk.seed)
        let dt = chunk.maturity / Double(chunk.steps)
        let driftStep = (chunk.rate - 0.5 * chunk.volatility * chunk.volatility) * dt
        let volatilityStep = chunk.volatility * dt.squareRoot()
        let discount = exp(-chunk.rate * chunk.maturity)
        var summary = Summary()
        summary.paths = chunk.paths
        summary.nodes = [ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "driver"]
        for _ in 0..<chunk.paths {
            var logPrice = 0.0
            var average = 0.0
            var step = 0
            while step < chunk.steps {
                // Box-Muller gives two normals per pair of uniforms.
                let (first, second) = generator.normalPair()
                logPrice += driftStep + volatilityStep * first
                average += exp(logPrice)
                step += 1
                if step < chunk.steps {
                    logPrice += driftStep + volatilityStep * second
                    average += exp(logPrice)
                    step += 1
                }
            }
            let terminal = chunk.spot * exp(logPrice)
            let european = discount * max(terminal - chunk.strike, 0)
            let asian = discount * max(chunk.spot * average / Double(chunk.steps) - chunk.strike, 0)
            summary.europeanSum += european
            summary.europeanSquares += european * european
            summary.asianSum += asian
            summary.asianSquares += asian * asian
            let bin = Int(((logPrice + 1) / 2 * Double(Summary.bins)).rounded(.down))
            summary.histogram[min(max(bin, 0), Summary.bins - 1)] += 1
        }
        return summary
    }

    /// The Black-Scholes price of a European call, to check the simulation against.
    static func blackScholesCall(spot: Double, strike: Double, rate: Double, volatility: Double, maturity: Double) -> Double {
        let d1 = (log(spot / strike) + (rate + 0.5 * volatility * volatility) * maturity) / (volatility * maturity.squareRoot())
        let d2 = d1 - volatility * maturity.squareRoot()
        func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.squareRoot()) }
        return spot * normalCDF(d1) - strike * exp(-rate * maturity) * normalCDF(d2)
    }
}

/// xoshiro256** seeded through SplitMix64: fast, and the same stream on every machine.
struct Xoshiro256 {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var mix = seed
        func next() -> UInt64 {
            mix &+= 0x9E37_79B9_7F4A_7C15
            var z = mix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (next(), next(), next(), next())
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotate(state.3, 45)
        return result
    }

    @inline(__always)
    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform in (0, 1].
    @inline(__always)
    mutating func uniform() -> Double { (Double(next() >> 11) + 1) * 0x1.0p-53 }

    /// Two independent standard normals (Box-Muller).
    @inline(__always)
    mutating func normalPair() -> (Double, Double) {
        let radius = (-2 * log(uniform())).squareRoot()
        let angle = 2 * Double.pi * uniform()
        return (radius * cos(angle), radius * sin(angle))
    }
}
