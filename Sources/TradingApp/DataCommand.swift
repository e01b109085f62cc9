import ArgumentParser
import Foundation
import Shoal
import ShoalMarket

/// `trading data`: synthetic market data, quality checks, features.
struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Generate synthetic market data, validate CSV bars, compute features.",
        subcommands: [Generate.self, Validate.self, Features.self, Bench.self]
    )

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a synthetic market (correlated GBM with regimes and GARCH volatility) as one CSV per symbol.")
        @Option(help: "Bars per symbol.") var bars = 10_000
        @Option(help: "Symbols, comma-separated.") var symbols = "AAA,BBB,CCC,DDD"
        @Option(help: "Seed (the same seed gives the same market).") var seed: UInt64 = 42
        @Option(name: .customLong("interval-ms"), help: "Bar length in milliseconds.") var interval: Int64 = 60_000
        @Option(help: "Correlation of the assets' shocks.") var correlation = 0.5
        @Option(help: "Per-bar volatility in the calm regime.") var volatility = 0.001
        @Option(help: "Output folder.") var out = "market"

        func run() async throws {
            guard bars > 0 else { throw ValidationError("--bars must be above 0") }
            var config = SyntheticMarket.Config()
            config.symbols = symbols.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            config.seed = seed
            config.interval = interval
            config.correlation = correlation
            config.volatility = volatility
            let market: SyntheticMarket
            do {
                market = try SyntheticMarket(config: config)
            } catch let error as MarketDataError {
                throw ValidationError(error.message)
            }
            let (series, regimes) = market.generate(bars: bars)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for data in series {
                try CSVBars.write(data, to: "\(out)/\(data.symbol).csv")
                let first = data.close.first ?? 0
                let last = data.close.last ?? 0
                print(
                    String(
                        format: "%@: %d bars, close %.2f → %.2f (%+.1f%%)", data.symbol, data.count, first, last,
                        (last / first - 1) * 100))
            }
            let shares = (0..<3).map { regime in
                Double(regimes.filter { $0 == regime }.count) / Double(max(1, regimes.count)) * 100
            }
            print(
                String(
                    format: "Regimes: calm %.0f%%, volatile %.0f%%, sideways %.0f%%. Written to %@/", shares[0], shares[1],
                    shares[2], out))
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check CSV bars for gaps, duplicates, disorder, bad prices, stale stretches and outliers.",
            discussion: "Exits with status 1 when any file has problems (so it can guard a pipeline).")
        @Argument(help: "CSV files.") var files: [String]
        @Option(name: .customLong("interval-ms"), help: "Expected bar spacing (default: the median spacing).") var interval:
            Int64?
        @Flag(name: .customLong("skip-weekends"), help: "Daily data: weekends are not gaps.") var skipWeekends = false
        @Option(help: "Write a repaired copy: drop (sort, dedupe, drop bad bars) or ffill (also fill gaps).") var repair: String?
        @Option(help: "Where the repaired copy goes (with --repair; one file).") var out: String?
        @Option(name: .customLong("time-zone"), help: "Time zone of times without an offset (default UTC).") var timeZone = "UTC"

        func validate() throws {
            guard !files.isEmpty else { throw ValidationError("give at least one CSV file") }
            if let repair, !["drop", "ffill"].contains(repair) {
                throw ValidationError("--repair is drop or ffill, not \(repair)")
            }
            if repair != nil && (out == nil || files.count != 1) { throw ValidationError("--repair needs one file and --out") }
            guard TimeZone(identifier: timeZone) != nil else { throw ValidationError("unknown time zone \(timeZone)") }
        }

        func run() async throws {
            let validator = DataValidator(interval: interval, skipWeekends: skipWeekends)
            var problems = false
            for file in files {
                let data = try loadBars(file, timeZone: TimeZone(identifier: timeZone) ?? .gmt)
                let report = validator.validate(data)
                print(report.rendered)
                problems = problems || !report.issues.isEmpty
                if let repair, let out {
                    let fixed = validator.repair(data, repair == "drop" ? .drop : .forwardFill)
                    try CSVBars.write(fixed, to: out)
                    print("Repaired copy (\(fixed.count) bars) written to \(out).")
                }
            }
            if problems { throw ExitCode(1) }
        }
    }

    struct Features: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compute the standard features (price, volume, volatility) of CSV bars into a CSV.",
            discussion: "Warm-up rows are left empty (NaN), never zero; every value uses bars up to its own only.")
        @Argument(help: "A CSV file of bars.") var file: String
        @Option(help: "Output CSV.") var out = "features.csv"
        @Flag(help: "Add wavelet energies, FFT band powers, Hurst exponent and Higuchi dimension.") var all = false
        @Option(help: "A second CSV of bars on the same clock: adds rolling correlation and beta against it.") var reference:
            String?

        func run() async throws {
            let data = try loadBars(file)
            var pipeline = FeaturePipeline.standard
            if all { pipeline.transformers.append(MultiResolutionFeatures()) }
            if let reference {
                let other = try loadBars(reference)
                guard other.timestamps == data.timestamps else {
                    throw CommandFailure("\(reference) and \(file) are not on the same clock; align them first")
                }
                pipeline.transformers.append(CrossAssetFeatures(reference: other))
            }
            let started = ContinuousClock.now
            let table = pipeline.transform(data)
            let took = ContinuousClock.now - started
            try table.write(to: out)
            print(
                "\(table.names.count) features × \(data.count) bars (complete from bar \(table.firstCompleteRow)) in \(took) → \(out)"
            )
            print("Columns: " + table.names.joined(separator: ", "))
        }
    }
}

extension DataCommand {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the features on a synthetic market (compare: Benchmarks/features_pandas.py).",
            discussion: """
                Core: the 17 standard features. All: those plus wavelet energies, FFT band powers, Hurst, \
                Higuchi and correlation and beta against the first asset (32 features).
                """)
        @Option(help: "Bars per asset.") var bars = 1_000_000
        @Option(help: "Assets.") var assets = 4
        @Option(help: "Trials (the best is reported).") var trials = 3
        @Option(help: "Write the figures as JSON here.") var json: String?

        func run() async throws {
            guard bars > 200, assets > 0, trials > 0 else { throw ValidationError("--bars > 200, --assets and --trials > 0") }
            var config = SyntheticMarket.Config()
            config.symbols = (0..<assets).map { "S\($0)" }
            let series = try SyntheticMarket(config: config).generate(bars: bars).series
            let reference = series[0]
            let pipelines = [
                ("core", 17, FeaturePipeline.standard),
                (
                    "all", 32,
                    FeaturePipeline(
                        FeaturePipeline.standard.transformers + [
                            MultiResolutionFeatures(), CrossAssetFeatures(reference: reference),
                        ])
                ),
            ]
            var results: [String: Double] = ["bars": Double(bars), "assets": Double(assets)]
            results["cores"] = Double(ProcessInfo.processInfo.activeProcessorCount)
            for (name, columns, pipeline) in pipelines {
                var serial: [Double] = []
                var parallel: [Double] = []
                for trial in 0..<trials {
                    var start = ContinuousClock.now
                    var checksum = 0
                    for data in series { checksum += pipeline.transform(data).columns.count }
                    serial.append((ContinuousClock.now - start).seconds)
                    start = ContinuousClock.now
                    let tables = await withTaskGroup(of: Int.self) { group in
                        for data in series { group.addTask { pipeline.transform(data).columns.count } }
                        return await group.reduce(0, +)
                    }
                    parallel.append((ContinuousClock.now - start).seconds)
                    guard checksum == columns * assets, tables == checksum else {
                        throw CommandFailure("unexpected feature count")
                    }
                    print(
                        String(
                            format: "  %@ trial %d: one thread %.3f s, all cores %.3f s", name, trial + 1, serial.last ?? 0,
                            parallel.last ?? 0))
                }
                let best = serial.min() ?? 0
                let bestParallel = parallel.min() ?? 0
                print(
                    String(
                        format:
                            "%d features (%@) × %d bars × %d assets: %.3f s on one thread (%.1f M bars/s), %.3f s on %d cores",
                        columns, name, bars, assets, best, Double(bars * assets) / best / 1e6, bestParallel,
                        ProcessInfo.processInfo.activeProcessorCount))
                let prefix = name == "core" ? "" : "all_"
                results[prefix + "seconds"] = best
                results[prefix + "parallel_seconds"] = bestParallel
            }
            if let json {
                try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys]).write(to: URL(fileURLWithPath: json))
            }
        }
    }
}

/// Bars from a CSV file; a missing or bad file is a failure naming the file and line.
private func loadBars(_ path: String, timeZone: TimeZone = .gmt) throws -> MarketData {
    do {
        return try CSVBars.load(path: path, timeZone: timeZone)
    } catch let error as MarketDataError {
        throw CommandFailure(error.message)
    }
}
