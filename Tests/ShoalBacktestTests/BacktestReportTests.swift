import Foundation
import ShoalMarket
import Testing

@testable import ShoalBacktest

struct BacktestReportTests {
    /// Drawdown, rolling Sharpe and monthly returns, by hand.
    @Test func seriesByHand() throws {
        let drawdown = BacktestReport.drawdown([110, 99, 121, 108.9], initial: 100)
        #expect(zip(drawdown, [0, -0.1, 0, -0.1]).allSatisfy { abs($0 - $1) < 1e-12 })

        let returns = [0.01, -0.02, 0.03, 0.0, 0.01]
        let rolling = BacktestReport.rollingSharpe(returns, window: 3, periodsPerYear: 252)
        #expect(rolling[0] == nil && rolling[1] == nil)
        for end in 2..<5 {
            let window = Array(returns[end - 2...end])
            let mean = window.reduce(0, +) / 3
            let deviation = (window.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 2).squareRoot()
            #expect(abs((rolling[end] ?? .nan) - mean / deviation * 252.0.squareRoot()) < 1e-9, "window ending \(end)")
        }

        // 2024-01-30, 01-31, 02-01, 02-29, 2025-03-03.
        let days: [Int64] = [19_752, 19_753, 19_754, 19_782, 20_150]
        let table = BacktestReport.monthlyReturns(
            equity: [101, 102, 100, 103, 98], timestamps: days.map { $0 * 86_400_000 }, initial: 100)
        #expect(table.map(\.year) == [2024, 2025])
        #expect(abs((table[0].months[0] ?? .nan) - 0.02) < 1e-12, "January: 102 over the initial 100")
        #expect(abs((table[0].months[1] ?? .nan) - (103.0 / 102 - 1)) < 1e-12, "February: its last bar over January's")
        #expect(table[0].months[2] == nil && table[1].months[0] == nil)
        #expect(abs((table[1].months[2] ?? .nan) - (98.0 / 103 - 1)) < 1e-12, "March 2025 over February 2024, no bars between")
    }

    /// The page: every plot a PNG embedded as a data URI, the heat map, the metrics and the
    /// interventions, and the weights replayed from the fills.
    @Test func thePageIsSelfContained() throws {
        let (series, _) = try SyntheticMarket(config: SyntheticMarket.Config()).generate(bars: 2_000)
        let market = try MarketBars(Array(series.prefix(3)))
        var crossover = try MovingAverageCrossover(fast: 10, slow: 40)
        let result = try Backtester.runWeights(&crossover, on: market)
        let weights = BacktestReport.weights(of: result, on: market)
        let last = market.count - 1
        for asset in 0..<3 {
            let shares = result.fills.filter { $0.asset == asset }.reduce(0) { $0 + $1.quantity }
            #expect(abs(weights[last][asset] - shares * market.close[asset][last] / result.equity[last]) < 1e-12)
        }
        var report = BacktestReport(
            title: "SMA <test>", symbols: market.symbols, timestamps: market.timestamps, initialCash: 1_000_000,
            equity: result.equity)
        report.benchmark = ("buy and hold", result.equity.map { $0 * 0.9 })
        report.weights = weights
        report.metrics = [("sharpe_ratio", "1.23")]
        report.interventions = [
            RiskIntervention(
                bar: 5, timestamp: 0, asset: 1, rule: .stopLoss, action: .closed, requested: 10, allowed: -10, detail: "a & b")
        ]
        let html = try report.html()
        #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</body></html>\n"))
        #expect(html.contains("<title>SMA &lt;test&gt;</title>") && html.contains("a &amp; b"))
        #expect(!html.contains("http://") && !html.contains("https://"), "nothing fetched")
        let images = html.components(separatedBy: "src=\"data:image/png;base64,").dropFirst()
        #expect(images.count == 4, "equity, drawdown, rolling Sharpe, weights")
        for image in images {
            let encoded = String(image.prefix { $0 != "\"" })
            let bytes = try #require(Data(base64Encoded: encoded))
            #expect(bytes.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        }
        #expect(html.contains("<table class=\"heatmap\">") && html.contains("sharpe_ratio") && html.contains("stop_loss"))
    }
}
