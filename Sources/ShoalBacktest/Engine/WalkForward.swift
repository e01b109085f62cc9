import Foundation

/// Walk-forward analysis: folds of a training span followed by a test span, the test spans one
/// after another without overlap; each fold fits on its training span and trades its test span,
/// and the test spans' equity is stitched into one out-of-sample curve.
public struct WalkForward: Sendable, Equatable, Codable {
    public enum Scheme: String, Sendable, Equatable, Codable, CaseIterable {
        /// The training span keeps its length and moves with the test span.
        case rolling
        /// The training span starts at the first bar and grows.
        case expanding
    }

    /// One fold: bars `train` to fit on, bars `test` to trade.
    public struct Fold: Sendable, Equatable, Codable {
        public var index: Int
        public var train: Range<Int>
        public var test: Range<Int>
    }

    public var scheme: Scheme
    public var trainBars: Int
    public var testBars: Int

    public init(scheme: Scheme, trainBars: Int, testBars: Int) {
        self.scheme = scheme
        self.trainBars = trainBars
        self.testBars = testBars
    }

    /// The folds over `bars` bars: the first test span starts after `trainBars`, each next one
    /// where the last ended; a last test span shorter than `testBars` is kept if it has at least
    /// two bars.
    /// - Throws: `BacktestError` for spans that are not positive or bars too few for one fold.
    public func folds(bars: Int) throws -> [Fold] {
        guard trainBars >= 2, testBars >= 2 else {
            throw BacktestError("walk-forward spans need at least 2 bars each, not \(trainBars) and \(testBars)")
        }
        guard bars >= trainBars + 2 else {
            throw BacktestError("\(bars) bars leave no test span after a training span of \(trainBars)")
        }
        var folds: [Fold] = []
        var start = trainBars
        while bars - start >= 2 {
            let end = Swift.min(start + testBars, bars)
            let train = scheme == .rolling ? (start - trainBars)..<start : 0..<start
            folds.append(Fold(index: folds.count, train: train, test: start..<end))
            start = end
        }
        return folds
    }

    /// The out-of-sample equity: each fold's test-span equity (every fold starts from `initial`)
    /// chained by its returns, so the curve is what `initial` would have become trading fold
    /// after fold.
    public static func stitch(_ equities: [[Double]], initial: Double) -> [Double] {
        var stitched: [Double] = []
        stitched.reserveCapacity(equities.reduce(0) { $0 + $1.count })
        var level = initial
        for equity in equities {
            var previous = initial
            for value in equity {
                level *= value / previous
                previous = value
                stitched.append(level)
            }
        }
        return stitched
    }
}

/// A weight strategy that trades only from bar `start` on: it is asked at every bar (so that
/// its state warms up on the bars before) and its decisions before `start` are held back; at
/// `start` its latest weights go out.
public struct StartingAt<Inner: WeightStrategy>: WeightStrategy {
    public var inner: Inner
    public let start: Int
    var latest: [Double]?

    public init(_ inner: Inner, start: Int) {
        self.inner = inner
        self.start = start
    }

    public mutating func weights(at view: MarketView) -> [Double]? {
        let wanted = inner.weights(at: view)
        if let wanted { latest = wanted }
        if view.bar < start { return nil }
        if view.bar == start { return latest }
        return wanted
    }
}
