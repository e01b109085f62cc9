import Foundation
import Testing

@testable import ShoalBacktest

struct PerformanceMetricsTests {
    struct Fixture: Decodable {
        var returns: [Double]
        var benchmark: [Double]
        var expected: [String: Double]
        var risk_free: Double
        var expected_risk_free: [String: Double]
        struct Deflated: Decodable {
            var trials: Int
            var variance: Double
            var value: Double
        }
        var deflated: Deflated
    }

    static func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/metrics.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    static func values(_ metrics: PerformanceMetrics) throws -> [String: Double] {
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any] ?? [:]
        return object.compactMapValues { ($0 as? NSNumber)?.doubleValue }
    }

    /// Every metric matches empyrical's value on the fixture's 750 days (made by
    /// Benchmarks/metrics_reference.py), with and without a risk-free rate.
    @Test func metricsMatchEmpyrical() throws {
        let fixture = try Self.fixture()
        for (riskFree, expected) in [(0.0, fixture.expected), (fixture.risk_free, fixture.expected_risk_free)] {
            var settings = PerformanceMetrics.Settings()
            settings.riskFree = riskFree
            let ours = try Self.values(
                PerformanceMetrics(returns: fixture.returns, benchmark: fixture.benchmark, settings: settings))
            for (name, value) in expected {
                let mine = try #require(ours[name], "\(name) is missing")
                #expect(
                    abs(mine - value) <= 1e-9 * max(abs(value), 1e-12),
                    "\(name): \(mine) against \(value) (risk-free \(riskFree))")
            }
        }
        let deflated = PerformanceMetrics.deflatedSharpe(
            fixture.returns, trials: fixture.deflated.trials, trialVariance: fixture.deflated.variance)
        #expect(abs(deflated - fixture.deflated.value) <= 1e-6 * fixture.deflated.value, "\(deflated)")
    }

    /// Figures worked by hand on four returns.
    @Test func smallCasesByHand() throws {
        let metrics = try PerformanceMetrics(returns: [0.1, -0.2, 0.05, 0.0])
        #expect(abs(metrics.cumulativeReturn - (1.1 * 0.8 * 1.05 - 1)) < 1e-15)
        #expect(abs(metrics.maxDrawdown - (-0.2)) < 1e-15, "from 110 to 88")
        #expect(metrics.hitRate == 2.0 / 3 && abs(metrics.averageWin - 0.075) < 1e-15 && metrics.averageLoss == -0.2)
        #expect(metrics.alpha == nil && metrics.beta == nil)
        #expect(abs(metrics.omegaRatio - 0.15 / 0.2) < 1e-12)
        #expect(abs(PerformanceMetrics.inverseNormal(0.975) - 1.959_963_984_540_054) < 1e-12)
        let flat = try PerformanceMetrics(returns: [0.01, 0.01, 0.01])
        #expect(flat.maxDrawdown == 0 && flat.calmarRatio.isNaN, "no drawdown: no Calmar ratio, as empyrical")
    }

    /// Bad input is refused with the reason.
    @Test func badReturnsAreRefused() throws {
        #expect(throws: MetricsError("the metrics need at least two returns, not 1")) { try PerformanceMetrics(returns: [0.1]) }
        #expect(throws: MetricsError.self) { try PerformanceMetrics(returns: [0.1, .nan]) }
        #expect(throws: MetricsError.self) { try PerformanceMetrics(returns: [0.1, -1.5]) }
        #expect(throws: MetricsError.self) { try PerformanceMetrics(returns: [0.1, 0.2], benchmark: [0.1]) }
        let path = NSTemporaryDirectory() + "shoal-returns-\(UInt32.random(in: 0...UInt32.max)).csv"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("date,return\n2024-01-02,0.01\n2024-01-03,abc\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: MetricsError("\(path) line 3: 'abc' is not a return")) { try ReturnSeries(csv: path) }
        try Data("date,return\n2024-01-02,0.01\n2024-01-03,0.02\n".utf8).write(to: URL(fileURLWithPath: path))
        let series = try ReturnSeries(csv: path)
        #expect(series.returns == [0.01, 0.02] && series.dates == ["2024-01-02", "2024-01-03"])
        #expect(throws: MetricsError.self) {
            try series.aligned(with: ReturnSeries(dates: ["2024-01-02", "x"], returns: [0, 0]))
        }
    }
}
