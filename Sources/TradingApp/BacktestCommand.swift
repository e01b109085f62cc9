import ArgumentParser
import Foundation
import ShoalBacktest

/// `trading backtest`: evaluating strategies.
struct BacktestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest", abstract: "Evaluate strategies: performance metrics.", subcommands: [Metrics.self])

    struct Metrics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A returns series' performance metrics, with empyrical's names and definitions.",
            discussion: """
                FILE is a CSV `date,return` of simple returns, one period a line. Prints the metrics and, with --json, \
                writes them (figures that do not exist, such as a Calmar ratio without a drawdown, are null).
                """)

        @Option(help: "The strategy's returns: a CSV `date,return`.") var returns: String
        @Option(help: "A benchmark's returns on the same dates, for alpha and beta.") var benchmark: String?
        @Option(help: "Periods a year (252 for days).") var periodsPerYear = 252.0
        @Option(help: "The risk-free rate per period.") var riskFree = 0.0
        @Option(help: "The required return: per period for Sortino and downside risk, annual for omega.") var requiredReturn = 0.0
        @Option(help: "The tail share for value at risk.") var cutoff = 0.05
        @Option(help: "Strategies tried, for the deflated Sharpe ratio (with --trial-sharpe-variance).") var trials: Int?
        @Option(help: "The variance of the tried strategies' per-period Sharpe ratios.") var trialSharpeVariance: Double?
        @Option(help: "Write the metrics as JSON to this file.") var json: String?

        func validate() throws {
            guard periodsPerYear > 0 else { throw ValidationError("--periods-per-year must be positive") }
            guard cutoff > 0, cutoff < 1 else { throw ValidationError("--cutoff must be in (0, 1)") }
            guard (trials == nil) == (trialSharpeVariance == nil) else {
                throw ValidationError("--trials and --trial-sharpe-variance go together")
            }
            if let trials, trials < 2 { throw ValidationError("--trials must be at least 2") }
            if let trialSharpeVariance, trialSharpeVariance < 0 {
                throw ValidationError("--trial-sharpe-variance must not be negative")
            }
        }

        func run() throws {
            do {
                let series = try ReturnSeries(csv: returns)
                let reference = try benchmark.map { try series.aligned(with: ReturnSeries(csv: $0)) }
                var settings = PerformanceMetrics.Settings()
                settings.periodsPerYear = periodsPerYear
                settings.riskFree = riskFree
                settings.requiredReturn = requiredReturn
                settings.cutoff = cutoff
                let metrics = try PerformanceMetrics(returns: series.returns, benchmark: reference, settings: settings)
                var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any] ?? [:]
                if let trials, let trialSharpeVariance {
                    let deflated = PerformanceMetrics.deflatedSharpe(
                        series.returns.map { $0 - riskFree }, trials: trials, trialVariance: trialSharpeVariance)
                    object["deflated_sharpe_ratio"] = deflated.isFinite ? deflated : NSNull()
                }
                for key in object.keys.sorted() {
                    let value = (object[key] as? NSNumber).map { String(format: "%.6g", $0.doubleValue) } ?? "n/a"
                    print(key.padding(toLength: 28, withPad: " ", startingAt: 0) + value)
                }
                if let json {
                    try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                        .write(to: URL(fileURLWithPath: json))
                    print("Wrote \(json).")
                }
            } catch let error as MetricsError {
                throw ValidationError(error.message)
            }
        }
    }
}
