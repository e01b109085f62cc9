import Foundation
import Shoal
import ShoalBacktest
import ShoalMarket
import ShoalTrain
import ShoalRL
import ShoalRollouts
import ArgumentParser

extension WalkForward.Scheme: ExpressibleByArgument {}

/// Walk-forward folds as cluster tasks: the market goes into the object store once, each fold's
/// task reads it there, fits its strategy on its training span (the crossover's parameters
/// from a grid; the hybrid model trained afresh), trades its test span and returns that span's
/// equity.
enum WalkForwardTasks {
    /// Several assets' bars in a form the object store carries.
    struct Market: Codable, Sendable {
        var symbols: [String]
        var timestamps: [Int64]
        var open: [[Double]]
        var high: [[Double]]
        var low: [[Double]]
        var close: [[Double]]
        var volume: [[Double]]

        init(_ series: [MarketData]) {
            symbols = series.map(\.symbol)
            timestamps = series.first?.timestamps ?? []
            open = series.map(\.open)
            high = series.map(\.high)
            low = series.map(\.low)
            close = series.map(\.close)
            volume = series.map(\.volume)
        }

        var series: [MarketData] {
            symbols.indices.map { asset in
                var data = MarketData(symbol: symbols[asset])
                data.timestamps = timestamps
                data.open = open[asset]
                data.high = high[asset]
                data.low = low[asset]
                data.close = close[asset]
                data.volume = volume[asset]
                return data
            }
        }
    }

    /// How the hybrid model is retrained and traded in a fold.
    struct HybridSettings: Codable, Sendable {
        /// The training configuration (TrainingJSON) the folds train with.
        var config: String
        var passes: Int
        var minimumConfidence: Double
        var maximumDisagreement: Double?
    }

    struct FoldRequest: Codable, Sendable {
        var market: ObjectRef<Market>
        var fold: WalkForward.Fold
        var strategy: String
        var settings: BacktestConfig
        var invested: Double
        var volWindow: Int
        var rule: RebalanceRule
        var limits: RiskLimits?
        /// The crossover's (fast, slow) pairs to choose from on the training span.
        var grid: [[Int]]
        var hybrid: HybridSettings?
        /// The agent to train afresh in each fold.
        var agent: TradingAgentRecipe?
        /// For the annualised Sharpe ratio the crossover is chosen by.
        var periodsPerYear: Double
    }

    struct FoldResult: Codable, Sendable {
        var fold: WalkForward.Fold
        /// The test span's equity at each bar, from the initial cash.
        var equity: [Double]
        var fills: Int
        /// The fills themselves, their bars counted from the market's first bar.
        var trades: [Fill]
        var interventions: Int
        /// What the fold fitted on its training span.
        var chosen: String
        var node: String
        var seconds: Double
    }

    static let fold = RemoteTask("trading.backtest.fold") { (request: FoldRequest) in try await run(request) }
    static let tasks: [any AnyRemoteTask] = [fold]

    static func run(_ request: FoldRequest) async throws -> FoldResult {
        let started = ContinuousClock.now
        let market = try await request.market.get()
        let series = market.series
        let fold = request.fold
        let span = fold.train.lowerBound..<fold.test.upperBound
        let sliced = series.map { $0.selecting(Array(span)) }
        let bars = try MarketBars(sliced, window: request.settings.costs.window)
        let start = fold.test.lowerBound - span.lowerBound
        var chosen = "-"
        let outcome: (BacktestResult, [RiskIntervention])
        switch request.strategy {
        case "sma":
            let training = try MarketBars(series.map { $0.selecting(Array(fold.train)) }, window: request.settings.costs.window)
            var best: (score: Double, fast: Int, slow: Int)?
            for pair in request.grid where pair.count == 2 && pair[0] >= 1 && pair[0] < pair[1] && pair[1] < fold.train.count {
                var candidate = try MovingAverageCrossover(fast: pair[0], slow: pair[1], invested: request.invested)
                let result = try Backtester.runWeights(&candidate, on: training, config: request.settings)
                let score = sharpe(result.returns(initialCash: request.settings.initialCash))
                if best == nil || score > best?.score ?? -.infinity { best = (score, pair[0], pair[1]) }
            }
            guard let best else {
                throw BacktestError("fold \(fold.index): no (fast, slow) pair of the grid fits \(fold.train.count) training bars")
            }
            chosen = String(
                format: "fast %d, slow %d (Sharpe %.2f on the training span)", best.fast, best.slow,
                best.score * request.periodsPerYear.squareRoot())
            outcome = try backtest(
                MovingAverageCrossover(fast: best.fast, slow: best.slow, invested: request.invested), bars, start, request)
        case "inverse-vol":
            outcome = try backtest(InverseVolatility(window: request.volWindow, invested: request.invested), bars, start, request)
        case "hold":
            outcome = try backtest(BuyAndHold(invested: request.invested), bars, start, request)
        case "hybrid":
            guard let hybrid = request.hybrid else {
                throw BacktestError("fold \(fold.index): a hybrid fold needs its training settings")
            }
            (outcome, chosen) = try hybridFold(hybrid, sliced, bars, start, request)
        case "agent":
            guard let recipe = request.agent else { throw BacktestError("fold \(fold.index): an agent fold needs its recipe") }
            (outcome, chosen) = try agentFold(recipe, sliced, bars, start, request)
        default:
            throw BacktestError("no walk-forward strategy '\(request.strategy)'")
        }
        let (result, interventions) = outcome
        return FoldResult(
            fold: fold, equity: Array(result.equity[start...]), fills: result.fills.count,
            trades: result.fills.map {
                var fill = $0
                fill.bar += span.lowerBound
                return fill
            }, interventions: interventions.count,
            chosen: chosen, node: ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "driver",
            seconds: (ContinuousClock.now - started).seconds)
    }

    /// The mean bar return over its standard deviation (0 without variation).
    static func sharpe(_ returns: [Double]) -> Double {
        guard returns.count > 1 else { return 0 }
        let mean = returns.reduce(0, +) / Double(returns.count)
        let variance = returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(returns.count - 1)
        return variance > 0 ? mean / variance.squareRoot() : 0
    }

    /// The strategy warmed up on the training bars, trading from `start` under the rebalancing
    /// rule (through the risk manager when there are limits).
    static func backtest<Weights: WeightStrategy>(
        _ strategy: Weights, _ bars: MarketBars, _ start: Int, _ request: FoldRequest
    ) throws -> (BacktestResult, [RiskIntervention]) {
        let starting = StartingAt(strategy, start: start)
        if request.rule == .always { return try managed(starting, bars, request) }
        return try managed(try Scheduled(starting, rule: request.rule), bars, request)
    }

    static func managed<Weights: WeightStrategy>(
        _ weights: Weights, _ bars: MarketBars, _ request: FoldRequest
    ) throws -> (BacktestResult, [RiskIntervention]) {
        var strategy = weights
        return try Backtester.run(&strategy, limits: request.limits, on: bars, config: request.settings)
    }

    /// The signal source's validation check on bars `validation` (its signals there counted from
    /// the fold's first bar) and, when it beats cash, its test signals traded on the fold's bars
    /// through the risk manager.
    static func gated(
        _ validationSignals: [TradingSignal], on validation: Range<Int>, test: () throws -> [TradingSignal],
        _ sliced: [MarketData], _ bars: MarketBars, _ request: FoldRequest
    ) throws -> (outcome: (BacktestResult, [RiskIntervention]), check: SignalValidation) {
        let gate = request.hybrid
        func strategy(_ signals: [TradingSignal]) throws -> SignalStrategy {
            try SignalStrategy(
                signals, symbols: bars.symbols, minimumConfidence: gate?.minimumConfidence ?? 0,
                maximumDisagreement: gate?.maximumDisagreement)
        }
        let validationBars = try MarketBars(
            sliced.map { $0.selecting(Array(validation)) }, window: request.settings.costs.window)
        let check = try SignalValidation(
            try strategy(validationSignals.rebased(to: validation.lowerBound)), on: validationBars, config: request.settings)
        var traded = try strategy(check.passed ? test() : [])
        let outcome = try Backtester.run(&traded, limits: request.limits ?? RiskLimits(), on: bars, config: request.settings)
        return ((outcome.result, outcome.interventions), check)
    }

    /// Trains the agent afresh on the fold's training span (its last 15% for validation), checks
    /// its signals on the validation span after costs, and trades the test span only if they beat
    /// cash there.
    static func agentFold(
        _ recipe: TradingAgentRecipe, _ sliced: [MarketData], _ bars: MarketBars, _ start: Int, _ request: FoldRequest
    ) throws -> ((BacktestResult, [RiskIntervention]), String) {
        let data = sliced[0]
        let trainEnd = start * 85 / 100
        let environments = try recipe.market.environments(
            data: data, trainEnd: trainEnd, validationEnd: start, encoderWeights: nil, seed: recipe.seed)
        let (agent, members) = try recipe.train(on: environments.train, validation: environments.validation)
        let version = "\(recipe.algorithm) fold \(request.fold.index)"
        func signals(_ environment: TradingEnvironment) -> [TradingSignal] {
            AgentSignals.signals(
                agent: agent, environment: environment, symbol: data.symbol, timestamps: data.timestamps,
                invested: request.invested,
                version: version, seed: recipe.seed)
        }
        let (outcome, check) = try gated(
            signals(environments.validation), on: trainEnd..<start, test: { signals(environments.test) }, sliced, bars, request)
        var verdict = String(
            format: "trained %d steps; validation %+.2f%% after costs: %@", agent.stepsDone, 100 * check.totalReturn,
            check.passed ? "traded" : "not traded")
        if !members.isEmpty {
            verdict +=
                "; members "
                + members.map { String(format: "%@ %+.2f%%%@", $0.name, 100 * $0.validationReturn, $0.kept ? "" : " (out)") }
                .joined(separator: ", ")
        }
        return (outcome, verdict)
    }

    /// Trains the hybrid model on the fold's training span (its last 15% for validation and
    /// early stopping), checks its signals on that validation span after costs, and trades the
    /// test span only if they beat cash there.
    static func hybridFold(
        _ hybrid: HybridSettings, _ sliced: [MarketData], _ bars: MarketBars, _ start: Int, _ request: FoldRequest
    ) throws -> ((BacktestResult, [RiskIntervention]), String) {
        var config = try TrainingJSON.decoder().decode(TrainingConfig.self, from: Data(hybrid.config.utf8))
        let share = Double(start) / Double(bars.count)
        config.data.trainFraction = 0.85 * share
        config.data.validationFraction = 0.15 * share
        config.checkpointEvery = 0
        let dataset = try HybridDataset.build(sliced, config: config.data)
        var loop = try TrainingLoop(config: config, dataset: dataset)
        try loop.run()
        var source = HybridSignals(model: try loop.finalModel(), config: loop.config, modelVersion: "fold \(request.fold.index)")
        source.passes = hybrid.passes
        let trainEnd = Int(Double(bars.count) * config.data.trainFraction)
        let validationEnd = Int(Double(bars.count) * (config.data.trainFraction + config.data.validationFraction))
        let weight = request.invested / Double(bars.assets)
        let (outcome, check) = try gated(
            try source.signals(for: sliced, bars: trainEnd..<validationEnd, weight: weight, short: request.settings.allowShort),
            on: trainEnd..<validationEnd,
            test: {
                try source.signals(for: sliced, bars: start..<bars.count, weight: weight, short: request.settings.allowShort)
            },
            sliced, bars, request)
        let verdict = String(
            format: "trained %d steps; validation %+.2f%% after costs: %@", loop.state.step, 100 * check.totalReturn,
            check.passed ? "traded" : "not traded")
        return (outcome, verdict)
    }
}

extension BacktestCommand.Run {
    /// `--walk-forward`: the folds as cluster tasks (on the cluster found from --address,
    /// SHOAL_ADDRESS or `cluster start`, else an embedded local one), their test spans stitched.
    func runWalkForward(
        _ series: [MarketData], _ settings: BacktestConfig, _ limits: RiskLimits?, _ source: HybridSignals?,
        _ recipe: TradingAgentRecipe?
    ) async throws {
        guard let scheme = walkForward else { return }
        let count = series.map(\.close.count).min() ?? 0
        let plan = WalkForward(scheme: scheme, trainBars: trainBars, testBars: testBars)
        let folds = try plan.folds(bars: count)
        let grid = try smaGrid()
        let started = ContinuousClock.now
        let cluster = try await Cluster.connect(address: address)
        print(
            cluster.isEmbedded
                ? "Started an embedded local cluster (\(cluster.address)) for \(folds.count) folds."
                : "Connected to \(cluster.address) as \(cluster.jobID) for \(folds.count) folds.")
        let results: [WalkForwardTasks.FoldResult]
        do {
            let market = try await cluster.put(WalkForwardTasks.Market(series), inObjectStore: true)
            // The gate's settings serve agent folds too; the training configuration only hybrid ones.
            let hybrid = WalkForwardTasks.HybridSettings(
                config: try source.map { String(decoding: try TrainingJSON.encoder().encode($0.config), as: UTF8.self) } ?? "{}",
                passes: passes, minimumConfidence: minConfidence, maximumDisagreement: maxDisagreement)
            let refs = try folds.map { fold in
                try cluster.submit(
                    WalkForwardTasks.fold,
                    WalkForwardTasks.FoldRequest(
                        market: market, fold: fold, strategy: strategy.rawValue, settings: settings, invested: invested,
                        volWindow: volWindow, rule: try rule(), limits: limits, grid: grid, hybrid: hybrid, agent: recipe,
                        periodsPerYear: periodsPerYear))
            }
            var done = 0
            while done < refs.count {
                let (ready, _) = try await cluster.wait(refs, numReturns: min(refs.count, done + 1), timeout: .milliseconds(500))
                done = ready.count
                let seconds = max(1e-9, (ContinuousClock.now - started).seconds)
                let eta = done > 0 ? seconds / Double(done) * Double(refs.count - done) : 0
                FileHandle.standardError.write(
                    Data(
                        String(
                            format: "\r  folds %d/%d  %.2f folds/s  ETA %.1f s   ", done, refs.count, Double(done) / seconds, eta
                        )
                        .utf8))
            }
            FileHandle.standardError.write(Data("\n".utf8))
            results = try await cluster.get(refs)
        } catch {
            await cluster.shutdown()
            throw error
        }
        await cluster.shutdown()

        // The out-of-sample curve, and buy-and-hold over the same test spans beside it.
        let equity = WalkForward.stitch(results.map(\.equity), initial: settings.initialCash)
        var benchmarks: [[Double]] = []
        for fold in folds {
            let bars = try MarketBars(series.map { $0.selecting(Array(fold.test)) }, window: settings.costs.window)
            var hold = BuyAndHold(invested: invested)
            benchmarks.append(try Backtester.runWeights(&hold, on: bars, config: settings).equity)
        }
        let benchmark = WalkForward.stitch(benchmarks, initial: settings.initialCash)
        let timestamps = folds.flatMap { fold in fold.test.map { series[0].timestamps[$0] } }
        var metricSettings = PerformanceMetrics.Settings()
        metricSettings.periodsPerYear = periodsPerYear
        func returns(_ values: [Double]) -> [Double] { BacktestResult.returns(of: values, initial: settings.initialCash) }
        let metrics = try PerformanceMetrics(returns: returns(equity), settings: metricSettings)
        var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as? [String: Any] ?? [:]
        object["final_equity"] = equity.last ?? settings.initialCash
        object["trades"] = results.reduce(0) { $0 + $1.fills }
        object["risk_interventions"] = results.reduce(0) { $0 + $1.interventions }
        object["walk_forward"] = scheme.rawValue
        object["seconds"] = (ContinuousClock.now - started).seconds
        var table = "fold,train_start,train_end,test_start,test_end,return,sharpe,max_drawdown,fills,node,seconds,fitted\n"
        var rows: [[String: Any]] = []
        print("fold  train bars       test bars        return   Sharpe  max DD   fills  node        fitted on the training span")
        for result in results {
            let fold = result.fold
            let foldMetrics = try PerformanceMetrics(returns: returns(result.equity), settings: metricSettings)
            let total = (result.equity.last ?? settings.initialCash) / settings.initialCash - 1
            rows.append([
                "fold": fold.index, "train": [fold.train.lowerBound, fold.train.upperBound],
                "test": [fold.test.lowerBound, fold.test.upperBound], "return": total,
                "sharpe_ratio": foldMetrics.sharpeRatio.isFinite ? foldMetrics.sharpeRatio : NSNull(),
                "max_drawdown": foldMetrics.maxDrawdown, "fills": result.fills, "node": result.node, "seconds": result.seconds,
                "fitted": result.chosen,
            ])
            table +=
                "\(fold.index),\(fold.train.lowerBound),\(fold.train.upperBound),\(fold.test.lowerBound),\(fold.test.upperBound),"
                + "\(total),\(foldMetrics.sharpeRatio),\(foldMetrics.maxDrawdown),\(result.fills),\(result.node),\(result.seconds),"
                + "\"\(result.chosen)\"\n"
            print(
                String(
                    format: "%4d  %6d-%-8d  %6d-%-8d  %+6.2f%%  %@  %6.2f%%  %5d  %@  %@", fold.index, fold.train.lowerBound,
                    fold.train.upperBound, fold.test.lowerBound, fold.test.upperBound, 100 * total,
                    Self.figure(foldMetrics.sharpeRatio).padding(toLength: 6, withPad: " ", startingAt: 0),
                    100 * foldMetrics.maxDrawdown, result.fills, result.node.padding(toLength: 10, withPad: " ", startingAt: 0),
                    result.chosen))
        }
        object["folds"] = rows
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: out + "/metrics.json"))
        try Data(table.utf8).write(to: URL(fileURLWithPath: out + "/folds.csv"))
        var trades = "fold,bar,timestamp,symbol,quantity,price,reference_price,commission,slippage\n"
        for result in results {
            for fill in result.trades {
                trades +=
                    "\(result.fold.index),\(fill.bar),\(series[fill.asset].timestamps[fill.bar]),\(series[fill.asset].symbol),"
                    + "\(fill.quantity),\(fill.price),\(fill.referencePrice),\(fill.commission),\(fill.slippage)\n"
            }
        }
        try Data(trades.utf8).write(to: URL(fileURLWithPath: out + "/trades.csv"))
        var report = BacktestReport(
            title: "Walk-forward (\(scheme.rawValue), \(folds.count) folds): \(strategy.rawValue)", symbols: series.map(\.symbol),
            timestamps: timestamps, initialCash: settings.initialCash, equity: equity)
        report.benchmark = ("buy and hold", benchmark)
        report.periodsPerYear = periodsPerYear
        report.rollingWindow = rollingWindow
        report.metrics = Self.metricRows(object.filter { $0.key != "folds" })
        try Data(try report.html().utf8).write(to: URL(fileURLWithPath: out + "/report.html"))
        let nodes = Set(results.map(\.node)).sorted()
        print(
            String(
                format:
                    "Out of sample over %d folds (%d bars): return %+.2f%%, Sharpe %@, max drawdown %.2f%%; buy and hold %+.2f%%. "
                    + "Folds ran on %@ in %.1f s.",
                folds.count, equity.count, 100 * metrics.cumulativeReturn, Self.figure(metrics.sharpeRatio),
                100 * metrics.maxDrawdown,
                100 * ((benchmark.last ?? settings.initialCash) / settings.initialCash - 1), nodes.joined(separator: ", "),
                (ContinuousClock.now - started).seconds))
        print("Wrote \(out)/metrics.json, \(out)/folds.csv, \(out)/trades.csv and \(out)/report.html.")
    }

    /// `--grid`: the crossover's fast:slow pairs.
    func smaGrid() throws -> [[Int]] {
        try grid.split(separator: ",").map { pair in
            let parts = pair.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2, parts[0] >= 1, parts[0] < parts[1] else {
                throw ValidationError("--grid '\(grid)': expected FAST:SLOW pairs with 1 ≤ FAST < SLOW, such as 5:20,10:50")
            }
            return parts
        }
    }
}
