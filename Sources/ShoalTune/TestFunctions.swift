import Foundation

/// Standard functions for judging a search (all minimised), with their usual domains.
public enum TestFunction: String, CaseIterable, Sendable {
    /// Branin–Hoo on x ∈ [−5, 10], y ∈ [0, 15]; minimum 0.397887.
    case branin
    /// Hartmann-6 on [0, 1]⁶; minimum −3.32237.
    case hartmann6
    /// Styblinski–Tang in 5 dimensions on [−5, 5]: x0 uniform, x1 log-scaled (shifted by 6,
    /// so [1, 11]), x2 an integer, x3 a choice of 11 values, x4 uniform; minimum −195.83.
    case styblinskiTang = "styblinski-tang"

    /// The domain each parameter is searched over.
    public var space: SearchSpace {
        switch self {
        case .branin:
            return SearchSpace(trusted: ["x": .uniform(low: -5, high: 10), "y": .uniform(low: 0, high: 15)])
        case .hartmann6:
            return SearchSpace(
                trusted: Dictionary(uniqueKeysWithValues: (0..<6).map { ("x\($0)", Domain.uniform(low: 0, high: 1)) }))
        case .styblinskiTang:
            return SearchSpace(trusted: [
                "x0": .uniform(low: -5, high: 5), "x1": .loguniform(low: 1, high: 11), "x2": .randint(low: -5, high: 6),
                "x3": .choice((-5...5).map { .int($0) }), "x4": .uniform(low: -5, high: 5),
            ])
        }
    }

    /// The function's value at `config` (parameters missing or not numbers: nil).
    public func value(_ config: TrialConfig) -> Double? {
        func number(_ name: String) -> Double? { config[name]?.number }
        switch self {
        case .branin:
            guard let x = number("x"), let y = number("y") else { return nil }
            let b = 5.1 / (4 * Double.pi * Double.pi)
            let c = 5 / Double.pi
            let t = 1 / (8 * Double.pi)
            let term = y - b * x * x + c * x - 6
            return term * term + 10 * (1 - t) * Foundation.cos(x) + 10
        case .hartmann6:
            let x = (0..<6).compactMap { number("x\($0)") }
            guard x.count == 6 else { return nil }
            let alpha = [1.0, 1.2, 3.0, 3.2]
            let a: [[Double]] = [
                [10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14],
            ]
            let p: [[Double]] = [
                [1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381],
            ]
            var total = 0.0
            for i in 0..<4 {
                var inner = 0.0
                for j in 0..<6 { inner += a[i][j] * (x[j] - p[i][j] * 1e-4) * (x[j] - p[i][j] * 1e-4) }
                total -= alpha[i] * Foundation.exp(-inner)
            }
            return total
        case .styblinskiTang:
            guard let x0 = number("x0"), let x1 = number("x1"), let x2 = number("x2"), let x3 = number("x3"),
                let x4 = number("x4")
            else { return nil }
            var total = 0.0
            for x in [x0, x1 - 6, x2, x3, x4] {
                let square = x * x
                total += (square * square - 16 * square + 5 * x) / 2
            }
            return total
        }
    }
}
