import Foundation

/// Expected returns and covariance as PyPortfolioOpt estimates them from prices: the mean
/// historical return compounded (`(Π(1 + r))^(252/n) − 1`), the sample covariance of the
/// returns annualised (× 252), or its Ledoit–Wolf shrinkage toward a constant variance
/// (scikit-learn's estimator, as `CovarianceShrinkage.ledoit_wolf`).
public struct RiskModel: Sendable, Equatable {
    public var symbols: [String]
    public var expectedReturns: [Double]
    /// Row by row, `assets × assets`.
    public var covariance: [[Double]]

    public enum Estimator: String, Sendable, CaseIterable { case sample, ledoitWolf = "ledoit-wolf" }

    /// - Parameter prices: closes, one row a period, one column an asset.
    /// - Throws: `PortfolioError` for fewer than 3 rows, fewer than 2 assets, or a price that is
    ///   not positive and finite.
    public init(symbols: [String], prices: [[Double]], frequency: Double = 252, estimator: Estimator = .sample) throws {
        let assets = symbols.count
        guard assets >= 2 else { throw PortfolioError("a portfolio needs at least two assets") }
        guard prices.count >= 3, prices.allSatisfy({ $0.count == assets }) else {
            throw PortfolioError("prices need at least three rows of \(assets) closes each")
        }
        for (row, values) in prices.enumerated() {
            if let bad = values.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
                throw PortfolioError("row \(row + 1), \(symbols[bad]): price \(values[bad]) is not positive")
            }
        }
        var returns: [[Double]] = []
        for row in 1..<prices.count {
            var changes = [Double](repeating: 0, count: assets)
            for asset in 0..<assets { changes[asset] = prices[row][asset] / prices[row - 1][asset] - 1 }
            returns.append(changes)
        }
        let n = Double(returns.count)
        self.symbols = symbols
        var growth = [Double](repeating: 1, count: assets)
        var means = [Double](repeating: 0, count: assets)
        for row in returns {
            for asset in 0..<assets {
                growth[asset] *= 1 + row[asset]
                means[asset] += row[asset] / n
            }
        }
        expectedReturns = growth.map { Foundation.pow($0, frequency / n) - 1 }
        var centred = returns
        for row in centred.indices { for asset in 0..<assets { centred[row][asset] -= means[asset] } }
        var scatter = [[Double]](repeating: [Double](repeating: 0, count: assets), count: assets)
        for row in centred {
            for i in 0..<assets { for j in 0..<assets { scatter[i][j] += row[i] * row[j] } }
        }
        switch estimator {
        case .sample:
            covariance = scatter.map { $0.map { $0 / (n - 1) * frequency } }
        case .ledoitWolf:
            covariance = Self.ledoitWolf(centred: centred, scatter: scatter).map { $0.map { $0 * frequency } }
        }
    }

    public init(symbols: [String], expectedReturns: [Double], covariance: [[Double]]) {
        self.symbols = symbols
        self.expectedReturns = expectedReturns
        self.covariance = covariance
    }

    /// scikit-learn's `ledoit_wolf` on centred returns: the shrinkage toward μ·I that
    /// minimises the expected squared error.
    static func ledoitWolf(centred: [[Double]], scatter: [[Double]]) -> [[Double]] {
        let n = Double(centred.count)
        let p = scatter.count
        let empirical = scatter.map { $0.map { $0 / n } }
        let traces = (0..<p).map { empirical[$0][$0] }
        let mu = traces.reduce(0, +) / Double(p)
        var beta = 0.0
        var delta = 0.0
        for i in 0..<p {
            for j in 0..<p {
                var squares = 0.0
                for row in centred { squares += row[i] * row[i] * row[j] * row[j] }
                beta += squares
                delta += scatter[i][j] * scatter[i][j]
            }
        }
        delta /= n * n
        beta = 1 / (Double(p) * n) * (beta / n - delta)
        delta = (delta - 2 * mu * traces.reduce(0, +) + Double(p) * mu * mu) / Double(p)
        let shrinkage = Swift.min(beta, delta) == 0 ? 0 : Swift.min(beta, delta) / delta
        return (0..<p).map { i in (0..<p).map { j in (1 - shrinkage) * empirical[i][j] + (i == j ? shrinkage * mu : 0) } }
    }
}

/// What is wrong with a portfolio's input.
public struct PortfolioError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
