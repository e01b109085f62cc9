import Foundation
import ShoalMarket

/// The tree-structured Parzen estimator (Bergstra et al. 2011) as Optuna's `TPESampler` runs
/// it by default: random configurations for the first `startupTrials`; then the finished
/// trials split into the best γ(n) = min(⌈n/10⌉, 25) and the rest, a Parzen estimator (a
/// truncated Gaussian per observation plus a prior over the whole domain, bandwidths from the
/// neighbours' distances, clipped as Optuna's "magic clip") fitted to each, and for every
/// parameter the best of 24 candidates drawn from the good trials' estimator by the ratio
/// l(x)/g(x). Parameters are modelled one at a time (Optuna's default, univariate); log-scaled
/// ones in log, integers and quantised ones on their rounded grid, choices by category.
public struct TPESearch: Searcher {
    public struct Options: Sendable {
        public var startupTrials = 10
        public var candidates = 24
        public var priorWeight = 1.0
        public init() {}
    }

    let space: SearchSpace
    let samples: Int
    let options: Options
    var generator: SeededGenerator
    /// Finished trials: configuration and loss, in the order they were started.
    var history: [(trial: Int, config: TrialConfig, loss: Double)] = []

    public init(space: SearchSpace, samples: Int, seed: UInt64, options: Options = Options()) {
        self.space = space
        self.samples = samples
        self.options = options
        generator = SeededGenerator(seed: seed)
    }

    public mutating func observe(_ trial: Int, config: TrialConfig, loss: Double?) {
        guard let loss, loss.isFinite else { return }
        history.append((trial, config, loss))
        history.sort { $0.trial < $1.trial }
    }

    public mutating func suggest(_ trial: Int) -> TrialConfig? {
        guard trial < samples else { return nil }
        guard history.count >= options.startupTrials else { return space.sample(using: &generator) }
        let ranked = history.indices.sorted { (history[$0].loss, history[$0].trial) < (history[$1].loss, history[$1].trial) }
        let goodCount = min(Int((0.1 * Double(history.count)).rounded(.up)), 25)
        let good = Set(ranked.prefix(goodCount))
        var config = TrialConfig()
        for (name, domain) in space.parameters {
            let below = history.indices.filter { good.contains($0) }.compactMap { history[$0].config[name] }
            let above = history.indices.filter { !good.contains($0) }.compactMap { history[$0].config[name] }
            config[name] = choose(domain, below: below, above: above)
        }
        return config
    }

    /// The candidate drawn from the good trials' estimator with the largest l(x)/g(x).
    mutating func choose(_ domain: Domain, below: [TuneValue], above: [TuneValue]) -> TuneValue {
        switch domain {
        case .constant(let value): return value
        case .choice(let values), .grid(let values):
            let l = CategoricalParzen(
                values.count, observed: below.compactMap { values.firstIndex(of: $0) }, prior: options.priorWeight)
            let g = CategoricalParzen(
                values.count, observed: above.compactMap { values.firstIndex(of: $0) }, prior: options.priorWeight)
            var best = (score: -Double.infinity, index: 0)
            for _ in 0..<options.candidates {
                let index = l.sample(using: &generator)
                let score = Foundation.log(l.probabilities[index]) - Foundation.log(g.probabilities[index])
                if score > best.score { best = (score, index) }
            }
            return values[best.index]
        default:
            let scale = NumericScale(domain)
            let l = NumericParzen(below.compactMap { $0.number.map(scale.forward) }, scale: scale, prior: options.priorWeight)
            let g = NumericParzen(above.compactMap { $0.number.map(scale.forward) }, scale: scale, prior: options.priorWeight)
            var best = (score: -Double.infinity, x: l.low)
            for _ in 0..<options.candidates {
                let x = scale.snap(l.sample(using: &generator))
                let score = l.logDensity(x) - g.logDensity(x)
                if score > best.score { best = (score, x) }
            }
            return scale.value(best.x)
        }
    }
}

/// Where a numeric domain is modelled: log for log-uniform; integers and quantised values on
/// their grid, their bounds widened by half a step.
struct NumericScale {
    let low: Double
    let high: Double
    let log: Bool
    /// The grid's step in the modelled space (0: continuous).
    let step: Double
    let integer: Bool

    init(_ domain: Domain) {
        switch domain {
        case .uniform(let low, let high): (self.low, self.high, log, step, integer) = (low, high, false, 0, false)
        case .loguniform(let low, let high):
            (self.low, self.high, log, step, integer) = (Foundation.log(low), Foundation.log(high), true, 0, false)
        case .quniform(let low, let high, let q):
            (self.low, self.high, log, step, integer) = (low - q / 2, high + q / 2, false, q, false)
        case .randint(let low, let high):
            (self.low, self.high, log, step, integer) = (Double(low) - 0.5, Double(high - 1) + 0.5, false, 1, true)
        default: (self.low, self.high, log, step, integer) = (0, 1, false, 0, false)
        }
    }

    func forward(_ value: Double) -> Double { log ? Foundation.log(value) : value }

    /// A modelled point moved onto the grid (within the bounds).
    func snap(_ x: Double) -> Double {
        guard step > 0 else { return x }
        let origin = low + step / 2
        let snapped = origin + ((x - origin) / step).rounded() * step
        return Swift.min(Swift.max(snapped, origin), high - step / 2)
    }

    func value(_ x: Double) -> TuneValue {
        if integer { return .int(Int(x.rounded())) }
        return .double(log ? Foundation.exp(x) : x)
    }
}

/// A mixture of truncated Gaussians on [low, high]: one per observation and one for the
/// prior (centred, as wide as the domain).
struct NumericParzen {
    let low: Double
    let high: Double
    var means: [Double] = []
    var sigmas: [Double] = []
    var weights: [Double] = []

    init(_ observations: [Double], scale: NumericScale, prior: Double) {
        (low, high) = (scale.low, scale.high)
        let width = high - low
        let count = observations.count
        // Optuna's weights: the latest 25 observations in full, older ones ramped down.
        var observationWeights = [Double](repeating: 1, count: count)
        if count >= 25 {
            let ramp = count - 25
            for index in 0..<ramp {
                observationWeights[index] = 1 / Double(count) + (1 - 1 / Double(count)) * Double(index) / Double(max(ramp - 1, 1))
            }
        }
        let priorMean = low + width / 2
        let all = observations + [priorMean]
        let order = all.indices.sorted { all[$0] < all[$1] }
        let sorted = order.map { all[$0] }
        var sigma = [Double](repeating: width, count: all.count)
        for (rank, index) in order.enumerated() {
            let left = rank > 0 ? sorted[rank] - sorted[rank - 1] : sorted[rank] - low
            let right = rank < sorted.count - 1 ? sorted[rank + 1] - sorted[rank] : high - sorted[rank]
            sigma[index] = Swift.max(left, right)
        }
        let minimum = width / Swift.min(100, 1 + Double(all.count))
        for index in sigma.indices { sigma[index] = Swift.min(Swift.max(sigma[index], minimum), width) }
        sigma[all.count - 1] = width
        means = all
        sigmas = sigma
        let total = observationWeights.reduce(0, +) + prior
        weights = (observationWeights + [prior]).map { $0 / total }
    }

    static func normalCDF(_ z: Double) -> Double { 0.5 * erfc(-z / 2.squareRoot()) }

    func sample(using generator: inout SeededGenerator) -> Double {
        var pick = generator.uniform()
        var component = weights.count - 1
        for (index, weight) in weights.enumerated() {
            if pick < weight {
                component = index
                break
            }
            pick -= weight
        }
        // Inverse-CDF sampling of the truncated Gaussian.
        let (mean, sigma) = (means[component], sigmas[component])
        let a = Self.normalCDF((low - mean) / sigma)
        let b = Self.normalCDF((high - mean) / sigma)
        let u = a + generator.uniform() * (b - a)
        let x = mean + sigma * 2.squareRoot() * Self.inverseErf(2 * Swift.min(Swift.max(u, 1e-12), 1 - 1e-12) - 1)
        return Swift.min(Swift.max(x, low), high)
    }

    func logDensity(_ x: Double) -> Double {
        var total = 0.0
        for index in means.indices {
            let (mean, sigma) = (means[index], sigmas[index])
            let mass = Self.normalCDF((high - mean) / sigma) - Self.normalCDF((low - mean) / sigma)
            let z = (x - mean) / sigma
            total +=
                weights[index] * Foundation.exp(-0.5 * z * z) / (sigma * (2 * Double.pi).squareRoot() * Swift.max(mass, 1e-12))
        }
        return Foundation.log(Swift.max(total, 1e-300))
    }

    /// The inverse error function (Giles' approximation, refined by two Newton steps).
    static func inverseErf(_ y: Double) -> Double {
        let w = -Foundation.log((1 - y) * (1 + y))
        var x: Double
        if w < 5 {
            let v = w - 2.5
            var p = 2.81022636e-08
            for c in [
                3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
                1.50140941,
            ] {
                p = c + p * v
            }
            x = p * y
        } else {
            let v = w.squareRoot() - 3
            var p = -0.000200214257
            for c in [
                0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
                2.83297682,
            ] {
                p = c + p * v
            }
            x = p * y
        }
        for _ in 0..<2 {
            let error = erf(x) - y
            x -= error / (2 / Double.pi.squareRoot() * Foundation.exp(-x * x))
        }
        return x
    }
}

/// A mixture over categories: each observation puts its weight on its own category (with a
/// share of the prior spread over all), and the prior spreads evenly.
struct CategoricalParzen {
    let probabilities: [Double]

    init(_ categories: Int, observed: [Int], prior: Double) {
        var mass = [Double](repeating: prior / Double(categories), count: categories)
        for index in observed { mass[index] += 1 }
        let total = mass.reduce(0, +)
        probabilities = mass.map { $0 / total }
    }

    func sample(using generator: inout SeededGenerator) -> Int {
        var pick = generator.uniform()
        for (index, probability) in probabilities.enumerated() {
            if pick < probability { return index }
            pick -= probability
        }
        return probabilities.count - 1
    }
}
