import Foundation
import Testing

@testable import ShoalBacktest

struct PortfolioOptimizerTests {
    struct Fixture: Decodable {
        var symbols: [String]
        var prices: [[Double]]
        var caps: [Double]
        var views: [String: Double]
        var risk_aversion: Double
        var risk_free: Double
        var expected: Expected
        struct Expected: Decodable {
            var expected_returns: [Double]
            var covariance: [[Double]]
            var ledoit_wolf: [[Double]]
            var min_volatility: [Double]
            var max_sharpe: [Double]
            var target_return: Double
            var target_risk: Double
            var efficient_return: [Double]
            var efficient_risk: [Double]
            var hrp: [Double]
            var bl_returns: [Double]
            var bl_covariance: [[Double]]
            var bl_max_sharpe: [Double]
        }
    }

    static func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/portfolio.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    static func gap(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

    static func relative(_ a: [[Double]], _ b: [[Double]]) -> Double {
        zip(a.joined(), b.joined()).map { abs($0 - $1) / max(abs($1), 1e-300) }.max() ?? .infinity
    }

    /// Expected returns and both covariance estimates match PyPortfolioOpt's (and scikit-learn's
    /// Ledoit-Wolf) on the fixture's 756 days of 6 assets.
    @Test func estimatesMatchPyPortfolioOpt() throws {
        let fixture = try Self.fixture()
        let sample = try RiskModel(symbols: fixture.symbols, prices: fixture.prices)
        #expect(Self.gap(sample.expectedReturns, fixture.expected.expected_returns) < 1e-12)
        #expect(Self.relative(sample.covariance, fixture.expected.covariance) < 1e-10)
        let shrunk = try RiskModel(symbols: fixture.symbols, prices: fixture.prices, estimator: .ledoitWolf)
        #expect(Self.relative(shrunk.covariance, fixture.expected.ledoit_wolf) < 1e-10)
    }

    /// Every method's weights within 2e-3 of PyPortfolioOpt's (cvxpy's), Black-Litterman's
    /// posterior to 1e-6, and risk parity's contributions equal.
    @Test func portfoliosMatchPyPortfolioOpt() throws {
        let fixture = try Self.fixture()
        let expected = fixture.expected
        let optimizer = try PortfolioOptimizer(model: RiskModel(symbols: fixture.symbols, prices: fixture.prices))
        let cases: [(String, [Double], [Double])] = [
            ("min volatility", optimizer.minVolatility(), expected.min_volatility),
            ("max Sharpe", try optimizer.maxSharpe(riskFree: fixture.risk_free), expected.max_sharpe),
            ("efficient return", try optimizer.efficientReturn(expected.target_return), expected.efficient_return),
            ("efficient risk", try optimizer.efficientRisk(expected.target_risk), expected.efficient_risk),
            ("HRP", optimizer.hierarchicalRiskParity(), expected.hrp),
        ]
        for (name, ours, theirs) in cases {
            #expect(Self.gap(ours, theirs) < 2e-3, "\(name): \(ours) against \(theirs)")
            #expect(abs(ours.reduce(0, +) - 1) < 1e-9 && ours.allSatisfy { $0 >= -1e-12 }, "\(name) sums to 1, long only")
        }
        let views = Dictionary(uniqueKeysWithValues: fixture.views.compactMap { key, value in Int(key).map { ($0, value) } })
        #expect(views.count == 3)
        let posterior = try PortfolioOptimizer.blackLitterman(
            optimizer.model, marketCaps: fixture.caps, views: views, riskAversion: fixture.risk_aversion,
            riskFree: fixture.risk_free)
        #expect(zip(posterior.expectedReturns, expected.bl_returns).allSatisfy { abs($0 - $1) <= 1e-6 * abs($1) })
        #expect(Self.relative(posterior.covariance, expected.bl_covariance) < 1e-9)
        let blWeights = try PortfolioOptimizer(model: posterior).maxSharpe(riskFree: fixture.risk_free)
        #expect(Self.gap(blWeights, expected.bl_max_sharpe) < 2e-3, "\(blWeights)")
        let contributions = optimizer.riskContributions(optimizer.riskParity())
        #expect((contributions.max()! - contributions.min()!) < 1e-4, "\(contributions)")
    }

    /// Impossible requests are refused with the reason.
    @Test func impossibleRequestsAreRefused() throws {
        let fixture = try Self.fixture()
        let model = try RiskModel(symbols: fixture.symbols, prices: fixture.prices)
        #expect(throws: PortfolioError.self) { try PortfolioOptimizer(model: model, lower: 0.2, upper: 1) }
        let optimizer = try PortfolioOptimizer(model: model)
        #expect(throws: PortfolioError.self) { try optimizer.efficientReturn(10) }
        #expect(throws: PortfolioError.self) { try optimizer.efficientRisk(0.0001) }
        #expect(throws: PortfolioError.self) { try RiskModel(symbols: ["A"], prices: [[1], [2], [3]]) }
        #expect(throws: PortfolioError.self) { try RiskModel(symbols: ["A", "B"], prices: [[1, 2], [2, -1], [3, 3]]) }
        #expect(throws: PortfolioError.self) {
            try PortfolioOptimizer.blackLitterman(model, marketCaps: [1, 2], views: [0: 0.1], riskAversion: 2.5)
        }
    }
}
