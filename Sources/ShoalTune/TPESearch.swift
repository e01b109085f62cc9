import Foundation
import ShoalMarket

/// The tree-structured Parzen estimator (Bergstra et al. 2011) as Optuna 5's `TPESampler` runs
/// it by default: random configurations for the first `startupTrials`; then the finished trials
/// split into the best γ(n) = min(⌈n/10⌉, 25) and the rest (with the trials still running among
/// the rest: Optuna's constant liar), a Parzen estimator fitted to each — a mixture of product
/// kernels, one per trial plus a prior over the whole domain (multivariate, Optuna 5's default),
/// each parameter's bandwidth from its neighbours' distances, clipped as Optuna's "magic clip" —
/// and the best of 24 candidates drawn from the good trials' estimator by l(x)/g(x). Log-scaled
/// parameters are modelled in log, integers and quantised ones on their grid, choices by
/// category.
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
    /// Finished trials: configuration and loss, in trial order.
    var history: [(trial: Int, config: TrialConfig, loss: Double)] = []
    /// Trials suggested and not yet finished.
    var running: [Int: TrialConfig] = [:]

    public init(space: SearchSpace, samples: Int, seed: UInt64, options: Options = Options()) {
        self.space = space
        self.samples = samples
        self.options = options
        generator = SeededGenerator(seed: seed)
    }

    public mutating func observe(_ trial: Int, config: TrialConfig, loss: Double?) {
        running[trial] = nil
        guard let loss, loss.isFinite else { return }
        history.append((trial, config, loss))
        history.sort { $0.trial < $1.trial }
    }

    public mutating func suggest(_ trial: Int) -> TrialConfig? {
        guard trial < samples else { return nil }
        let config = history.count >= options.startupTrials ? model() : space.sample(using: &generator)
        running[trial] = config
        return config
    }

    /// The candidate with the largest l(x)/g(x).
    mutating func model() -> TrialConfig {
        let ranked = history.indices.sorted { (history[$0].loss, history[$0].trial) < (history[$1].loss, history[$1].trial) }
        let good = Set(ranked.prefix(min(Int((0.1 * Double(history.count)).rounded(.up)), 25)))
        let below = history.indices.filter { good.contains($0) }.map { history[$0].config }
        let above =
            history.indices.filter { !good.contains($0) }.map { history[$0].config }
            + running.keys.sorted().compactMap { running[$0] }
        let dimensions = space.parameters.filter { if case .constant = $0.domain { false } else { true } }
        let l = ProductParzen(below, dimensions: dimensions, prior: options.priorWeight)
        let g = ProductParzen(above, dimensions: dimensions, prior: options.priorWeight)
        var best: (score: Double, point: [Double])?
        for _ in 0..<options.candidates {
            let point = l.sample(using: &generator)
            let score = l.logDensity(point) - g.logDensity(point)
            if best == nil || score > best!.score { best = (score, point) }
        }
        var config = TrialConfig()
        for (name, domain) in space.parameters {
            if case .constant(let value) = domain { config[name] = value }
        }
        for (index, dimension) in dimensions.enumerated() {
            config[dimension.name] = l.kernels[index].value(best?.point[index] ?? 0)
        }
        return config
    }
}

/// One parameter's kernels in a product Parzen estimator: a truncated Gaussian per kernel on a
/// numeric scale, or a distribution over the categories.
enum ParzenDimension {
    case numeric(NumericParzen, NumericScale)
    case categorical(CategoricalKernels, [TuneValue])

    /// Kernel k's log-density (or log-mass) at x.
    func logDensity(_ x: Double, kernel k: Int) -> Double {
        switch self {
        case .numeric(let parzen, _): parzen.logDensity(x, kernel: k)
        case .categorical(let kernels, _): Foundation.log(Swift.max(kernels.rows[k][Int(x)], 1e-300))
        }
    }

    func sample(kernel k: Int, using generator: inout SeededGenerator) -> Double {
        switch self {
        case .numeric(let parzen, let scale): scale.snap(parzen.sample(kernel: k, using: &generator))
        case .categorical(let kernels, _): Double(kernels.sample(kernel: k, using: &generator))
        }
    }

    /// A modelled point as the parameter's value.
    func value(_ x: Double) -> TuneValue {
        switch self {
        case .numeric(_, let scale): scale.value(x)
        case .categorical(_, let values): values[Swift.min(Swift.max(Int(x), 0), values.count - 1)]
        }
    }
}

/// A mixture of product kernels over several parameters (Optuna's multivariate estimator):
/// kernel k is observation k in every parameter at once, the last kernel the prior.
struct ProductParzen {
    var kernels: [ParzenDimension] = []
    var weights: [Double] = []

    init(_ configs: [TrialConfig], dimensions: [(name: String, domain: Domain)], prior: Double) {
        let count = configs.count
        var observationWeights = [Double](repeating: 1, count: count)
        // Optuna's weights: the latest 25 observations in full, older ones ramped down.
        if count >= 25 {
            let ramp = count - 25
            for index in 0..<ramp {
                observationWeights[index] = 1 / Double(count) + (1 - 1 / Double(count)) * Double(index) / Double(max(ramp - 1, 1))
            }
        }
        let total = observationWeights.reduce(0, +) + prior
        weights = (observationWeights + [prior]).map { $0 / total }
        for (name, domain) in dimensions {
            switch domain {
            case .choice(let values), .grid(let values):
                let observed = configs.map { config in config[name].flatMap { values.firstIndex(of: $0) } ?? 0 }
                kernels.append(.categorical(CategoricalKernels(values.count, observed: observed, prior: prior), values))
            default:
                let scale = NumericScale(domain)
                let observed = configs.map { scale.forward($0[name]?.number ?? scale.low) }
                kernels.append(.numeric(NumericParzen(observed, scale: scale), scale))
            }
        }
    }

    func sample(using generator: inout SeededGenerator) -> [Double] {
        var pick = generator.uniform()
        var kernel = weights.count - 1
        for (index, weight) in weights.enumerated() {
            if pick < weight {
                kernel = index
                break
            }
            pick -= weight
        }
        return kernels.map { $0.sample(kernel: kernel, using: &generator) }
    }

    /// log Σ_k w_k Π_d p_kd(x_d), summed in log space.
    func logDensity(_ point: [Double]) -> Double {
        let terms = weights.indices.map { k in
            Foundation.log(weights[k]) + kernels.indices.reduce(0.0) { $0 + kernels[$1].logDensity(point[$1], kernel: k) }
        }
        let top = terms.max() ?? 0
        guard top.isFinite else { return -Double.infinity }
        return top + Foundation.log(terms.reduce(0) { $0 + Foundation.exp($1 - top) })
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

/// One parameter's truncated Gaussian kernels on [low, high] as Optuna's Parzen estimator
/// makes them: one per observation, its bandwidth the larger gap to its neighbours among the
/// observations (the first and last take their inner gap), clipped to [width / min(100,
/// kernels + 1), width], and one for the prior, centred and as wide as the domain. On a grid
/// (integers, quantised values) a point's mass is the kernel's over its cell.
struct NumericParzen {
    let low: Double
    let high: Double
    /// The grid's step (0: continuous).
    let step: Double
    var means: [Double] = []
    var sigmas: [Double] = []
    /// Each kernel's mass inside [low, high].
    var masses: [Double] = []

    init(_ observations: [Double], scale: NumericScale) {
        (low, high, step) = (scale.low, scale.high, scale.step)
        let width = high - low
        let count = observations.count
        let order = observations.indices.sorted { observations[$0] < observations[$1] }
        let sorted = [low] + order.map { observations[$0] } + [high]
        var sigma = [Double](repeating: width, count: count)
        for (rank, index) in order.enumerated() {
            let position = rank + 1
            var gap = Swift.max(sorted[position] - sorted[position - 1], sorted[position + 1] - sorted[position])
            // The domain's ends do not count as neighbours (Optuna's consider_endpoints = false).
            if sorted.count >= 4 {
                if rank == 0 { gap = sorted[2] - sorted[1] }
                if rank == count - 1 { gap = sorted[count] - sorted[count - 1] }
            }
            sigma[index] = gap
        }
        let minimum = width / Swift.min(100, 1 + Double(count + 1))
        for index in sigma.indices { sigma[index] = Swift.min(Swift.max(sigma[index], minimum), width) }
        means = observations + [low + width / 2]
        sigmas = sigma + [width]
        masses = zip(means, sigmas).map { mean, sigma in
            Swift.max(Self.normalCDF((high - mean) / sigma) - Self.normalCDF((low - mean) / sigma), 1e-12)
        }
    }

    static func normalCDF(_ z: Double) -> Double { 0.5 * erfc(-z / 2.squareRoot()) }

    /// A draw from kernel k (inverse-CDF sampling of the truncated Gaussian).
    func sample(kernel k: Int, using generator: inout SeededGenerator) -> Double {
        let (mean, sigma) = (means[k], sigmas[k])
        let a = Self.normalCDF((low - mean) / sigma)
        let b = Self.normalCDF((high - mean) / sigma)
        let u = a + generator.uniform() * (b - a)
        let x = mean + sigma * 2.squareRoot() * Self.inverseErf(2 * Swift.min(Swift.max(u, 1e-12), 1 - 1e-12) - 1)
        return Swift.min(Swift.max(x, low), high)
    }

    /// Kernel k's log-density at x (on a grid: the log-mass of x's cell).
    func logDensity(_ x: Double, kernel k: Int) -> Double {
        let (mean, sigma) = (means[k], sigmas[k])
        if step > 0 {
            let upper = Self.normalCDF((Swift.min(x + step / 2, high) - mean) / sigma)
            let lower = Self.normalCDF((Swift.max(x - step / 2, low) - mean) / sigma)
            return Foundation.log(Swift.max(upper - lower, 1e-300) / masses[k])
        }
        let z = (x - mean) / sigma
        return -0.5 * z * z - Foundation.log(sigma * (2 * Double.pi).squareRoot() * masses[k])
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

/// One choice parameter's kernels as Optuna's: observation k's kernel puts 1 on its own
/// category and prior / (observations + 1) on every category, normalised; the prior's kernel
/// is uniform.
struct CategoricalKernels {
    let rows: [[Double]]

    init(_ categories: Int, observed: [Int], prior: Double) {
        let smoothing = prior / Double(observed.count + 1)
        var rows = observed.map { category in
            (0..<categories).map { smoothing + ($0 == category ? 1 : 0) }.map { $0 / (1 + smoothing * Double(categories)) }
        }
        rows.append([Double](repeating: 1 / Double(categories), count: categories))
        self.rows = rows
    }

    func sample(kernel k: Int, using generator: inout SeededGenerator) -> Int {
        var pick = generator.uniform()
        for (index, probability) in rows[k].enumerated() {
            if pick < probability { return index }
            pick -= probability
        }
        return rows[k].count - 1
    }
}
