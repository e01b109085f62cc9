import ArgumentParser
import Foundation
import ShoalBacktest
import ShoalMarket
import Shoal
import ShoalPlot
import ShoalTrain
import ShoalRL
import ShoalRollouts

/// `trading backtest`: evaluating strategies.
struct BacktestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest", abstract: "Evaluate strategies: backtests and performance metrics.",
        subcommands: [Run.self, Metrics.self])

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Backtest a strategy bar by bar with costs; write its metrics, trades and equity curve.",
            discussion: """
                On the synthetic market (--bars, --market-seed) or CSV bar files (--csv, one asset each, the same \
                timestamps). Orders fill at the next bar's open unless --fill close. Writes metrics.json, trades.csv, \
                equity.png and report.html (one self-contained page: equity beside buy-and-hold, drawdown, rolling \
                Sharpe, monthly returns, weights, the risk manager's interventions) into --out.
                """)

        enum StrategyName: String, ExpressibleByArgument, CaseIterable {
            case hold, sma
            case inverseVolatility = "inverse-vol"
            case hybrid, agent
        }
        enum Fill: String, ExpressibleByArgument, CaseIterable { case nextOpen = "next-open", close }

        @Option(
            help:
                "hold (equal weights, bought once), sma (the moving-average crossover) or inverse-vol (weights against each asset's volatility)."
        ) var strategy: StrategyName = .sma
        @Option(help: "The crossover's fast average.") var fast = 10
        @Option(help: "The crossover's slow average.") var slow = 50
        @Option(help: "The share of the equity in the market when fully invested.") var invested = 1.0
        @Option(help: "Returns behind inverse-vol's volatilities and the volatility target's.") var volWindow = 63
        @Option(
            help: "When weights are traded: always, weekly, monthly, quarterly, yearly, or threshold:BAND (drift beyond BAND).")
        var rebalance = "always"
        @Option(help: "Scale the weights to this annual volatility (at most fully invested).") var volTarget: Double?
        @Option(help: "Leave out trades under this share of the equity.") var minTrade = 0.0
        @Option(help: "Bars in the report's rolling Sharpe ratio.") var rollingWindow = 63
        @Option(help: "hybrid: the folder trading model train --out wrote (config.json, model.safetensors).") var modelDir:
            String?
        @Option(help: "agent: the folder trading rl train --env trading wrote (agent.json, checkpoint.safetensors).")
        var agentDir: String?
        @Option(help: "hybrid: Monte Carlo dropout passes per window.") var passes = 20
        @Option(help: "hybrid: act only on signals at least this confident (0…1).") var minConfidence = 0.0
        @Option(help: "hybrid: act only on signals whose regression spread is at most this.") var maxDisagreement: Double?
        @Flag(help: "Allow short positions (a hybrid sell goes short).") var allowShort = false
        @Option(help: "Walk-forward analysis: rolling or expanding training spans, each fold a cluster task.")
        var walkForward: WalkForward.Scheme?
        @Option(help: "Walk-forward: bars of each training span (the first, for expanding).") var trainBars = 2_000
        @Option(help: "Walk-forward: bars of each test span.") var testBars = 500
        @Option(help: "Walk-forward: the crossover's FAST:SLOW pairs to fit on each training span.") var grid =
            "5:20,10:50,20:100"
        @Option(
            help:
                "Walk-forward: the cluster's head, HOST:PORT (default: SHOAL_ADDRESS, the session file, or an embedded cluster).")
        var address: String?
        @Option(
            help: ArgumentHelp(
                "Risk limits, a JSON file (keys: max_position_fraction, max_gross_exposure, stop_loss, max_drawdown, …).",
                discussion:
                    "With limits the backtest runs bar by bar through the risk manager; its interventions go to interventions.csv."
            ))
        var risk: String?
        @Option(
            name: .customLong("repeat"),
            help: "Run the backtest this many times and report the median time (the first run included).") var repeats = 1
        @Option(
            name: [.customLong("csv"), .customLong("data")], parsing: .upToNextOption, help: "Bar CSV files, one asset each.")
        var csv: [String] = []
        @Option(help: "Bars of the synthetic market.") var bars = 20_000
        @Option(help: "The synthetic market's seed.") var marketSeed: UInt64 = 42
        @Option(help: "next-open or close.") var fill: Fill = .nextOpen
        @Option(help: "Starting cash.") var cash = 1_000_000.0
        @Option(help: "Commission in basis points.") var commissionBps = 10.0
        @Option(help: "Commission per share.") var commissionPerShare = 0.0
        @Option(help: "Slippage in basis points.") var slippageBps = 5.0
        @Option(help: "Square-root impact coefficient k (k·σ·sqrt(q/ADV)).") var impact = 0.0
        @Option(help: "Periods a year, for the metrics (252 × 390 for minute bars).") var periodsPerYear = 252.0 * 390
        @Option(help: "The folder written.") var out = "backtest"

        func validate() throws {
            _ = try rule()
            guard minTrade >= 0, minTrade < 1 else { throw ValidationError("--min-trade must be in [0, 1)") }
            guard invested > 0, invested <= 1 else { throw ValidationError("--invested must be in (0, 1]") }
            guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
            guard rollingWindow >= 2 else { throw ValidationError("--rolling-window must be at least 2") }
            guard (strategy == .hybrid) == (modelDir != nil) else {
                throw ValidationError("--strategy hybrid and --model-dir go together")
            }
            guard (strategy == .agent) == (agentDir != nil) else {
                throw ValidationError("--strategy agent and --agent-dir go together")
            }
            guard passes >= 2 else { throw ValidationError("--passes must be at least 2") }
            guard minConfidence >= 0, minConfidence <= 1 else { throw ValidationError("--min-confidence must be in [0, 1]") }
        }

        func run() async throws {
            do {
                var series: [MarketData]
                var source: HybridSignals?
                if let modelDir {
                    source = try HybridSignals.load(folder: modelDir)
                    source?.passes = passes
                }
                // A signal source: its market's split and the signals of a span of bars.
                var signalSource: (trainEnd: Int, validationEnd: Int, signals: (Range<Int>) throws -> [TradingSignal])?
                var agentRecipe: TradingAgentRecipe?
                if let agentDir, walkForward != nil {
                    // Each fold trains its own agent from the recipe: no checkpoint needed.
                    guard let data = FileManager.default.contents(atPath: agentDir + "/" + TradingAgentRecipe.fileName),
                        let recipe = try? JSONDecoder().decode(TradingAgentRecipe.self, from: data)
                    else {
                        throw ValidationError(
                            "no agent recipe in \(agentDir)/\(TradingAgentRecipe.fileName): give a folder trading rl train --env trading wrote"
                        )
                    }
                    guard recipe.market.features == .basic else {
                        throw ValidationError(
                            "--walk-forward trains agents on the basic features; this one observes an encoder's")
                    }
                    guard csv.isEmpty else {
                        throw ValidationError("--strategy agent trades its recipe's market: leave out --csv")
                    }
                    agentRecipe = recipe
                    series = [try recipe.market.series()]
                } else if let agentDir {
                    let (recipe, agent, built) = try TradingAgentRecipe.load(folder: agentDir)
                    guard csv.isEmpty else {
                        throw ValidationError("--strategy agent trades the market its agent was trained on: leave out --csv")
                    }
                    var marketConfig = SyntheticMarket.Config()
                    marketConfig.seed = recipe.market.marketSeed
                    marketConfig.symbols = ["AAA"]
                    series = try SyntheticMarket(config: marketConfig).generate(bars: recipe.market.bars).series
                    let data = series[0]
                    let version = "\(recipe.algorithm) (\((agentDir as NSString).lastPathComponent))"
                    signalSource = (
                        built.validation.span.lowerBound, built.validation.span.upperBound,
                        { range in
                            let environment = range == built.validation.span ? built.validation : built.test
                            return AgentSignals.signals(
                                agent: agent, environment: environment, symbol: data.symbol, timestamps: data.timestamps,
                                invested: invested, version: version, seed: recipe.seed)
                        }
                    )
                } else if csv.isEmpty, let source {
                    series = try source.config.data.load()
                } else if csv.isEmpty {
                    var config = SyntheticMarket.Config()
                    config.seed = marketSeed
                    series = try SyntheticMarket(config: config).generate(bars: bars).series
                } else {
                    series = try csv.map { try CSVBars.load(path: $0) }
                }
                var settings = BacktestConfig()
                settings.initialCash = cash
                settings.fill = fill == .close ? .close : .nextOpen
                settings.costs.commissionBps = commissionBps
                settings.costs.commissionPerShare = commissionPerShare
                settings.costs.slippageBps = slippageBps
                settings.costs.impactCoefficient = impact
                settings.minimumTrade = minTrade
                settings.allowShort = allowShort
                let limits = try risk.map(Self.limits)
                if walkForward != nil {
                    return try await runWalkForward(series, settings, limits, source, agentRecipe)
                }
                var object: [String: Any] = [:]
                var signalStrategy: SignalStrategy?
                var signalRows: [TradingSignal] = []
                if let source {
                    let count = series.map(\.close.count).min() ?? 0
                    let weight = invested / Double(series.count)
                    let hybridSeries = series
                    signalSource = (
                        Int(Double(count) * source.config.data.trainFraction),
                        Int(Double(count) * (source.config.data.trainFraction + source.config.data.validationFraction)),
                        { range in try source.signals(for: hybridSeries, bars: range, weight: weight, short: allowShort) }
                    )
                }
                if let (trainEnd, validationEnd, signalsOf) = signalSource {
                    // Validation decides whether the source trades; the test span is traded.
                    let count = series.map(\.close.count).min() ?? 0
                    guard validationEnd > trainEnd + 1, count > validationEnd + 1 else {
                        throw ValidationError("\(count) bars leave no validation or test span at the source's fractions")
                    }
                    func span(_ range: Range<Int>) throws -> (MarketBars, SignalStrategy, [TradingSignal]) {
                        let signals = try signalsOf(range).rebased(to: range.lowerBound)
                        let bars = try MarketBars(series.map { $0.selecting(Array(range)) }, window: settings.costs.window)
                        let strategy = try SignalStrategy(
                            signals, symbols: bars.symbols, minimumConfidence: minConfidence, maximumDisagreement: maxDisagreement
                        )
                        return (bars, strategy, signals)
                    }
                    let (validationBars, validationStrategy, _) = try span(trainEnd..<validationEnd)
                    let check = try SignalValidation(validationStrategy, on: validationBars, config: settings)
                    let (testBars, testStrategy, testSignals) = try span(validationEnd..<count)
                    object["signal_validation_return"] = check.totalReturn
                    object["signal_traded"] = check.passed
                    print(
                        String(
                            format: "Validation (bars %d to %d) after costs: %+.2f%% with %d fills — %@.", trainEnd,
                            validationEnd,
                            100 * check.totalReturn, check.fills,
                            check.passed
                                ? "better than cash: the source trades the test span"
                                : "not better than cash: the source is not traded, the test span holds cash"))
                    signalStrategy = check.passed ? testStrategy : try SignalStrategy([], symbols: testBars.symbols)
                    signalRows = testSignals
                    series = series.map { $0.selecting(Array(validationEnd..<count)) }
                }
                let market = try MarketBars(series, window: settings.costs.window)
                var times: [Double] = []
                var outcome: (result: BacktestResult, interventions: [RiskIntervention])?
                for _ in 0..<(signalStrategy == nil ? repeats : 1) {
                    let started = ContinuousClock.now
                    switch strategy {
                    case .hold: outcome = try evaluate(BuyAndHold(invested: invested), market, settings, limits)
                    case .sma:
                        outcome = try evaluate(
                            MovingAverageCrossover(fast: fast, slow: slow, invested: invested), market, settings, limits)
                    case .inverseVolatility:
                        outcome = try evaluate(InverseVolatility(window: volWindow, invested: invested), market, settings, limits)
                    case .hybrid, .agent:
                        if var signals = signalStrategy {
                            outcome = try Backtester.run(&signals, limits: limits ?? RiskLimits(), on: market, config: settings)
                            object["signals_gated"] = signals.gated
                            object["signals_acted"] = signals.acted
                        }
                    }
                    times.append((ContinuousClock.now - started).seconds)
                }
                guard let (result, interventions) = outcome else { return }
                let seconds = times.sorted()[times.count / 2]
                var metricSettings = PerformanceMetrics.Settings()
                metricSettings.periodsPerYear = periodsPerYear
                let returns = result.returns(initialCash: cash)
                let metrics = try PerformanceMetrics(returns: returns, settings: metricSettings)
                for (key, value) in try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any] ?? [:]
                {
                    object[key] = value
                }
                object["final_equity"] = result.equity.last ?? cash
                object["trades"] = result.fills.count
                object["turnover"] = result.turnover
                object["exposure"] = result.exposure
                object["commissions"] = result.commissions
                object["slippage"] = result.slippage
                object["rejections"] = result.rejections.count
                object["backtest_seconds"] = seconds
                if !signalRows.isEmpty {
                    object["mean_confidence"] = signalRows.reduce(0) { $0 + $1.confidence } / Double(signalRows.count)
                    object["signals"] = signalRows.count
                }
                if limits != nil {
                    object["risk_interventions"] = Dictionary(grouping: interventions, by: \.rule.rawValue).mapValues(\.count)
                    var lines = "bar,timestamp,symbol,rule,action,requested,allowed,detail\n"
                    for entry in interventions {
                        lines +=
                            "\(entry.bar),\(entry.timestamp),\(market.symbols[entry.asset]),\(entry.rule.rawValue),\(entry.action.rawValue),"
                            + "\(entry.requested),\(entry.allowed),\"\(entry.detail.replacingOccurrences(of: "\"", with: "'"))\"\n"
                    }
                    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                    try Data(lines.utf8).write(to: URL(fileURLWithPath: out + "/interventions.csv"))
                }
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                    .write(to: URL(fileURLWithPath: out + "/metrics.json"))
                var trades = "bar,timestamp,symbol,quantity,price,reference_price,commission,slippage\n"
                for fill in result.fills {
                    trades +=
                        "\(fill.bar),\(market.timestamps[fill.bar]),\(market.symbols[fill.asset]),\(fill.quantity),"
                        + "\(fill.price),\(fill.referencePrice),\(fill.commission),\(fill.slippage)\n"
                }
                try Data(trades.utf8).write(to: URL(fileURLWithPath: out + "/trades.csv"))
                if !signalRows.isEmpty {
                    var lines = "bar,timestamp,symbol,action,target_weight,confidence,disagreement,model\n"
                    for signal in signalRows {
                        lines +=
                            "\(signal.bar),\(signal.timestamp),\(signal.instrument),\(signal.action.rawValue),\(signal.targetWeight),"
                            + "\(signal.confidence),\(signal.disagreement),\(signal.modelVersion)\n"
                    }
                    try Data(lines.utf8).write(to: URL(fileURLWithPath: out + "/signals.csv"))
                }
                var plot = LinePlot(title: "\(strategy.rawValue): equity", xLabel: "bar", yLabel: "equity")
                let step = max(1, result.equity.count / 2000)
                plot.series.append(
                    .init(
                        name: "equity",
                        points: stride(from: 0, to: result.equity.count, by: step).map { (Double($0), result.equity[$0]) }))
                try plot.write(to: out + "/equity.png")
                var benchmarkStrategy = BuyAndHold(invested: invested)
                let benchmark = try Backtester.runWeights(&benchmarkStrategy, on: market, config: settings)
                var report = BacktestReport(
                    title: "Backtest: \(strategy.rawValue)", symbols: market.symbols, timestamps: market.timestamps,
                    initialCash: cash,
                    equity: result.equity)
                report.benchmark = ("buy and hold", benchmark.equity)
                report.weights = BacktestReport.weights(of: result, on: market)
                report.periodsPerYear = periodsPerYear
                report.rollingWindow = rollingWindow
                report.interventions = interventions
                report.metrics = Self.metricRows(object)
                try Data(try report.html().utf8).write(to: URL(fileURLWithPath: out + "/report.html"))
                print(
                    String(
                        format:
                            "%@ on %d bars × %d assets in %.3f s (%.0f bars/s): final equity %.2f, return %+.2f%%, Sharpe %@, "
                            + "max drawdown %.2f%%, %d trades, costs %.2f.",
                        strategy.rawValue, market.count, market.assets, seconds, Double(market.count) / max(seconds, 1e-9),
                        result.equity.last ?? cash, metrics.cumulativeReturn * 100, Self.figure(metrics.sharpeRatio),
                        metrics.maxDrawdown * 100,
                        result.fills.count, result.commissions + result.slippage))
                if limits != nil {
                    let counts = Dictionary(grouping: interventions, by: \.rule.rawValue).mapValues(\.count)
                    print(
                        "Risk manager: \(interventions.count) interventions"
                            + (counts.isEmpty
                                ? "."
                                : " (" + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                                    + ")."))
                }
                print(
                    "Wrote \(out)/metrics.json, \(out)/trades.csv\(limits == nil ? "" : ", \(out)/interventions.csv")"
                        + "\(signalRows.isEmpty ? "" : ", \(out)/signals.csv"), \(out)/equity.png "
                        + "and \(out)/report.html.")
            } catch let error as BacktestError {
                throw ValidationError(error.message)
            } catch let error as MetricsError {
                throw ValidationError(error.message)
            } catch let error as MarketDataError {
                throw ValidationError(error.message)
            }
        }

        /// A ratio for a line of text: two decimals, or n/a where it does not exist (no variation).
        static func figure(_ value: Double) -> String { value.isFinite ? String(format: "%.2f", value) : "n/a" }

        /// `--rebalance` read.
        func rule() throws -> RebalanceRule {
            if rebalance == "always" { return .always }
            if let period = CalendarPeriod(rawValue: rebalance) { return .calendar(period) }
            if rebalance.hasPrefix("threshold:"), let band = Double(rebalance.dropFirst("threshold:".count)), band > 0 {
                return .threshold(band)
            }
            throw ValidationError(
                "--rebalance '\(rebalance)': expected always, weekly, monthly, quarterly, yearly or threshold:BAND (BAND > 0)")
        }

        /// The limits in a JSON file.
        static func limits(_ path: String) throws -> RiskLimits {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--risk: cannot read \(path)")
            }
            do {
                return try JSONDecoder().decode(RiskLimits.self, from: data)
            } catch let error as BacktestError {
                throw ValidationError("--risk \(path): \(error.message)")
            } catch {
                throw ValidationError("--risk \(path): not a JSON object of limits (\(error))")
            }
        }

        /// The strategy with the volatility target and the rebalancing rule around it, backtested
        /// (through the risk manager, bar by bar, when there are limits).
        func evaluate<Weights: WeightStrategy>(
            _ base: Weights, _ market: MarketBars, _ settings: BacktestConfig, _ limits: RiskLimits?
        ) throws -> (BacktestResult, [RiskIntervention]) {
            guard let volTarget else { return try scheduled(base, market, settings, limits) }
            return try scheduled(
                VolatilityTargeted(base, target: volTarget, window: volWindow, periodsPerYear: periodsPerYear), market, settings,
                limits)
        }

        func scheduled<Weights: WeightStrategy>(
            _ base: Weights, _ market: MarketBars, _ settings: BacktestConfig, _ limits: RiskLimits?
        ) throws -> (BacktestResult, [RiskIntervention]) {
            let rule = try rule()
            if rule == .always {
                return try managed(base, market, settings, limits)
            }
            return try managed(try Scheduled(base, rule: rule), market, settings, limits)
        }

        func managed<Weights: WeightStrategy>(
            _ weights: Weights, _ market: MarketBars, _ settings: BacktestConfig, _ limits: RiskLimits?
        ) throws -> (BacktestResult, [RiskIntervention]) {
            var strategy = weights
            let outcome = try Backtester.run(&strategy, limits: limits, on: market, config: settings)
            return (outcome.result, outcome.interventions)
        }

        /// Rows of a metrics object for the report: numbers to six digits, other values as they are.
        static func metricRows(_ object: [String: Any]) -> [(name: String, value: String)] {
            object.keys.sorted().map { key in
                (key, (object[key] as? NSNumber).map { String(format: "%.6g", $0.doubleValue) } ?? "\(object[key] ?? "n/a")")
            }
        }
    }

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

        func run() async throws {
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
