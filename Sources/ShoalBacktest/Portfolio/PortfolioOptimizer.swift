import Foundation

/// Portfolios from a risk model with PyPortfolioOpt's methods and conventions: on the
/// efficient frontier (minimum volatility, a target return or risk, the maximum Sharpe ratio)
/// with weights in [lower, upper] summing to 1; hierarchical risk parity; equal risk
/// contributions; Black–Litterman's posterior.
///
/// Frontier portfolios solve `min wᵀΣw − λ·μᵀw` over the bounded simplex by accelerated
/// projected gradient (an exact projection, restarts when the objective rises), λ found by
/// bisection for a target, and the maximum Sharpe ratio by golden-section search along the
/// frontier (the Sharpe ratio is quasi-concave there).
public struct PortfolioOptimizer: Sendable {
    public let model: RiskModel
    public let lower: Double
    public let upper: Double
    let lipschitz: Double

    /// - Throws: `PortfolioError` when no weights in the bounds sum to 1.
    public init(model: RiskModel, lower: Double = 0, upper: Double = 1) throws {
        let n = Double(model.symbols.count)
        guard lower <= upper, lower * n <= 1 + 1e-12, upper * n >= 1 - 1e-12 else {
            throw PortfolioError("no weights in [\(lower), \(upper)] for \(Int(n)) assets sum to 1")
        }
        self.model = model
        self.lower = lower
        self.upper = upper
        lipschitz = 2 * Self.largestEigenvalue(model.covariance) + 1e-12
    }

    /// A portfolio's annual expected return, volatility and Sharpe ratio.
    public func performance(
        _ weights: [Double], riskFree: Double = 0
    ) -> (expectedReturn: Double, volatility: Double, sharpe: Double) {
        let expected = zip(weights, model.expectedReturns).reduce(0) { $0 + $1.0 * $1.1 }
        let volatility = variance(weights).squareRoot()
        return (expected, volatility, (expected - riskFree) / volatility)
    }

    func variance(_ w: [Double]) -> Double {
        var total = 0.0
        for i in w.indices { for j in w.indices { total += w[i] * model.covariance[i][j] * w[j] } }
        return total
    }

    // MARK: - The efficient frontier

    public func minVolatility() -> [Double] { frontier(lambda: 0) }

    /// The least risky portfolio returning at least `target` a year.
    /// - Throws: `PortfolioError` when no portfolio in the bounds returns that much.
    public func efficientReturn(_ target: Double) throws -> [Double] {
        let safest = minVolatility()
        if performance(safest).expectedReturn >= target { return safest }
        guard target <= maximumReturn() + 1e-12 else {
            throw PortfolioError("no portfolio in the bounds returns \(target) (at most \(maximumReturn()))")
        }
        var (low, high) = (0.0, 1.0)
        var upperPoint = frontier(lambda: high, from: safest)
        while performance(upperPoint).expectedReturn < target, high < 1e12 {
            high *= 2
            upperPoint = frontier(lambda: high, from: upperPoint)
        }
        for _ in 0..<45 {
            let middle = (low + high) / 2
            let point = frontier(lambda: middle, from: upperPoint)
            if performance(point).expectedReturn >= target {
                (high, upperPoint) = (middle, point)
            } else {
                low = middle
            }
        }
        return upperPoint
    }

    /// The highest-returning portfolio whose volatility is at most `target`.
    /// - Throws: `PortfolioError` when even the least risky portfolio is riskier.
    public func efficientRisk(_ target: Double) throws -> [Double] {
        let safest = minVolatility()
        guard performance(safest).volatility <= target + 1e-12 else {
            throw PortfolioError(
                "no portfolio in the bounds is as calm as \(target) (at least \(performance(safest).volatility))")
        }
        var (low, high) = (0.0, 1.0)
        var lowerPoint = safest
        var upperPoint = frontier(lambda: high, from: safest)
        while performance(upperPoint).volatility <= target, high < 1e12 {
            (low, lowerPoint) = (high, upperPoint)
            high *= 2
            upperPoint = frontier(lambda: high, from: upperPoint)
        }
        if high >= 1e12 { return upperPoint }
        for _ in 0..<45 {
            let middle = (low + high) / 2
            let point = frontier(lambda: middle, from: lowerPoint)
            if performance(point).volatility <= target {
                (low, lowerPoint) = (middle, point)
            } else {
                (high, upperPoint) = (middle, point)
            }
        }
        return lowerPoint
    }

    /// The tangency portfolio: the highest Sharpe ratio against `riskFree`.
    /// - Throws: `PortfolioError` when no asset returns more than the risk-free rate.
    public func maxSharpe(riskFree: Double = 0) throws -> [Double] {
        guard model.expectedReturns.contains(where: { $0 > riskFree }) else {
            throw PortfolioError("no asset is expected to return more than the risk-free rate \(riskFree)")
        }
        if lower == 0 && upper >= 1 { return tangency(riskFree: riskFree) }
        var low = performance(minVolatility()).expectedReturn
        var high = maximumReturn()
        if high <= low { return minVolatility() }
        func sharpe(_ target: Double) -> Double {
            guard let weights = try? efficientReturn(target) else { return -.infinity }
            return performance(weights, riskFree: riskFree).sharpe
        }
        let ratio = (5.0.squareRoot() - 1) / 2
        var (a, b) = (high - ratio * (high - low), low + ratio * (high - low))
        var (fa, fb) = (sharpe(a), sharpe(b))
        for _ in 0..<80 {
            if fa < fb {
                low = a
                (a, fa) = (b, fb)
                b = low + ratio * (high - low)
                fb = sharpe(b)
            } else {
                high = b
                (b, fb) = (a, fa)
                a = high - ratio * (high - low)
                fa = sharpe(a)
            }
        }
        return try efficientReturn((low + high) / 2)
    }

    /// Long only: the tangency portfolio as PyPortfolioOpt finds it, `min yᵀΣy` subject to
    /// `(μ − r_f)ᵀy = 1, y ≥ 0`, then `w = y / Σy` — by accelerated projected gradient, the
    /// projection onto that set `max(v − τ(μ − r_f), 0)` with τ by bisection.
    func tangency(riskFree: Double) -> [Double] {
        let n = model.symbols.count
        let excess = model.expectedReturns.map { $0 - riskFree }
        func project(_ v: [Double]) -> [Double] {
            // aᵀmax(v − τa, 0) falls as τ grows.
            func total(_ tau: Double) -> Double { zip(v, excess).reduce(0) { $0 + $1.1 * Swift.max($1.0 - tau * $1.1, 0) } }
            var (low, high) = (-1.0, 1.0)
            while total(low) < 1 { low *= 2 }
            while total(high) > 1 { high *= 2 }
            for _ in 0..<100 {
                let tau = (low + high) / 2
                if total(tau) > 1 { low = tau } else { high = tau }
            }
            let tau = (low + high) / 2
            return zip(v, excess).map { Swift.max($0 - tau * $1, 0) }
        }
        let best = excess.indices.max { excess[$0] < excess[$1] } ?? 0
        var start = [Double](repeating: 0, count: n)
        start[best] = 1 / excess[best]
        let w = minimise(from: start, linear: [Double](repeating: 0, count: n), project: project) {
            Swift.max(1, $0.reduce(0, +))
        }
        let total = w.reduce(0, +)
        return w.map { $0 / total }
    }

    /// The largest return any weights in the bounds give (the best assets at the upper bound).
    func maximumReturn() -> Double {
        var weights = [Double](repeating: lower, count: model.symbols.count)
        var left = 1 - lower * Double(weights.count)
        for asset in model.expectedReturns.indices.sorted(by: { model.expectedReturns[$0] > model.expectedReturns[$1] }) {
            let add = Swift.min(upper - lower, left)
            weights[asset] += add
            left -= add
        }
        return performance(weights).expectedReturn
    }

    /// `argmin wᵀΣw − λ·μᵀw` over the bounded simplex, from `start` (a nearby solution) or
    /// equal weights.
    func frontier(lambda: Double, from start: [Double]? = nil) -> [Double] {
        let n = model.symbols.count
        return minimise(
            from: start ?? [Double](repeating: 1 / Double(n), count: n), linear: model.expectedReturns.map { -lambda * $0 },
            project: project
        ) { _ in 1 }
    }

    /// `argmin xᵀΣx + cᵀx` over the set `project` maps onto, by FISTA with adaptive restarts:
    /// done when a step moves no weight by more than 1e-11 × `scale(x)`, or when a plain step
    /// from the last point no longer descends (converged to rounding).
    func minimise(
        from start: [Double], linear: [Double], project: ([Double]) -> [Double], scale: ([Double]) -> Double
    ) -> [Double] {
        let n = start.count
        let sigma = model.covariance
        func objective(_ x: [Double]) -> Double { variance(x) + zip(x, linear).reduce(0) { $0 + $1.0 * $1.1 } }
        var w = project(start)
        var y = w
        var t = 1.0
        var value = objective(w)
        var step = w
        for _ in 0..<20_000 {
            for i in 0..<n {
                var gradient = linear[i]
                for j in 0..<n { gradient += 2 * sigma[i][j] * y[j] }
                step[i] = y[i] - gradient / lipschitz
            }
            let next = project(step)
            var change = 0.0
            for i in 0..<n { change = Swift.max(change, Swift.abs(next[i] - w[i])) }
            if change < 1e-11 * scale(next) { return next }
            let nextValue = objective(next)
            if nextValue > value + 1e-15 * Swift.abs(value) {
                if t == 1 { return w }
                // The momentum overshot: start it again from the last point.
                y = w
                t = 1
                continue
            }
            let tNext = (1 + (1 + 4 * t * t).squareRoot()) / 2
            for i in 0..<n { y[i] = next[i] + (t - 1) / tNext * (next[i] - w[i]) }
            (w, value, t) = (next, nextValue, tNext)
        }
        return w
    }

    /// The nearest point with weights in [lower, upper] summing to 1: `clip(v − τ)` with τ by
    /// bisection.
    func project(_ v: [Double]) -> [Double] {
        var low = (v.min() ?? 0) - upper - 1
        var high = (v.max() ?? 0) - lower + 1
        for _ in 0..<100 {
            let tau = (low + high) / 2
            let total = v.reduce(0) { $0 + Swift.min(Swift.max($1 - tau, lower), upper) }
            if total > 1 { low = tau } else { high = tau }
        }
        let tau = (low + high) / 2
        return v.map { Swift.min(Swift.max($0 - tau, lower), upper) }
    }

    static func largestEigenvalue(_ matrix: [[Double]]) -> Double {
        var vector = [Double](repeating: 1 / Double(matrix.count).squareRoot(), count: matrix.count)
        var value = 0.0
        for _ in 0..<500 {
            let next = matrix.map { row in zip(row, vector).reduce(0) { $0 + $1.0 * $1.1 } }
            let norm = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else { return 0 }
            value = norm
            vector = next.map { $0 / norm }
        }
        return value
    }

    // MARK: - Risk-based allocations

    /// Equal risk contributions (each asset's wᵢ·(Σw)ᵢ the same), long only: cyclical
    /// coordinate descent on Spinu's convex form, then normalised.
    public func riskParity() -> [Double] {
        let sigma = model.covariance
        let n = sigma.count
        let budget = 1 / Double(n)
        var w = (0..<n).map { 1 / sigma[$0][$0].squareRoot() }
        for _ in 0..<10_000 {
            var change = 0.0
            for i in 0..<n {
                var others = 0.0
                for j in 0..<n where j != i { others += sigma[i][j] * w[j] }
                let next = (-others + (others * others + 4 * sigma[i][i] * budget).squareRoot()) / (2 * sigma[i][i])
                change = Swift.max(change, Swift.abs(next - w[i]))
                w[i] = next
            }
            if change < 1e-15 { break }
        }
        let total = w.reduce(0, +)
        return w.map { $0 / total }
    }

    /// Each asset's share of the portfolio's variance.
    public func riskContributions(_ w: [Double]) -> [Double] {
        let total = variance(w)
        return w.indices.map { i in w[i] * model.covariance[i].indices.reduce(0) { $0 + model.covariance[i][$1] * w[$1] } / total
        }
    }
}
