import ArgumentParser
import Foundation
import Shoal

/// `trading demo`: Monte Carlo option pricing map-reduced over the cluster's tasks.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Price options by Monte Carlo, map-reduced over cluster tasks, and print a summary.",
        discussion: "Runs on the cluster found from SHOAL_ADDRESS or `cluster start`, else on an embedded local cluster."
    )

    @Option(help: "The cluster's head, HOST:PORT (default: SHOAL_ADDRESS, the session file, or an embedded cluster).")
    var address: String?

    @Option(help: "Chunks of paths, one task each.")
    var chunks = 64

    @Option(help: "Paths per chunk.")
    var paths = 10_000

    @Option(help: "Time steps per path.")
    var steps = 252

    @Option(help: "Spot price.")
    var spot = 100.0

    @Option(help: "Strike price.")
    var strike = 105.0

    @Option(help: "Risk-free rate (annual).")
    var rate = 0.03

    @Option(help: "Volatility (annual).")
    var volatility = 0.25

    @Option(help: "Maturity in years.")
    var maturity = 1.0

    @Option(help: "Random seed.")
    var seed: UInt64 = 2026

    func validate() throws {
        guard chunks > 0, paths > 0, steps > 0 else { throw ValidationError("--chunks, --paths and --steps must be positive") }
        guard spot > 0, strike > 0, volatility > 0, maturity > 0 else {
            throw ValidationError("--spot, --strike, --volatility and --maturity must be positive")
        }
    }

    func run() async throws {
        let start = ContinuousClock.now
        let cluster = try await Cluster.connect(address: address)
        print(
            cluster.isEmbedded
                ? "Started an embedded local cluster (\(cluster.address))."
                : "Connected to \(cluster.address) as \(cluster.jobID).")
        let status = try await cluster.status()
        print("Nodes: " + status.nodes.filter(\.alive).map { "\($0.id) (\($0.total))" }.joined(separator: ", "))

        // Map: one simulation task per chunk. Reduce: a tree of merge tasks, each depending on
        // two earlier results; the scheduler runs each as soon as its inputs exist.
        var level = try (0..<chunks).map { index in
            try cluster.submit(
                MonteCarlo.simulate,
                MonteCarlo.Chunk(
                    seed: seed &+ UInt64(index) &* 0x9E37_79B9, paths: paths, steps: steps, spot: spot, rate: rate,
                    volatility: volatility, strike: strike, maturity: maturity))
        }
        var submitted = level.count
        try await showProgress(cluster, level, start: start)
        while level.count > 1 {
            var next: [ObjectRef<MonteCarlo.Summary>] = []
            for index in stride(from: 0, to: level.count - 1, by: 2) {
                next.append(try cluster.submit(MonteCarlo.merge, MonteCarlo.Pair(left: level[index], right: level[index + 1])))
            }
            if level.count % 2 == 1 { next.append(level[level.count - 1]) }
            submitted += next.count - (level.count % 2)
            level = next
        }
        let summary = try await cluster.get(level[0])
        let elapsed = (ContinuousClock.now - start)
        await cluster.shutdown()
        report(summary, tasks: submitted, elapsed: elapsed)
    }

    /// Prints a progress line while the simulation tasks finish.
    private func showProgress(
        _ cluster: Cluster, _ refs: [ObjectRef<MonteCarlo.Summary>], start: ContinuousClock.Instant
    ) async throws {
        var done = 0
        while done < refs.count {
            let (ready, _) = try await cluster.wait(refs, numReturns: min(refs.count, done + 1), timeout: .milliseconds(250))
            done = ready.count
            let seconds = max(1e-9, (ContinuousClock.now - start).seconds)
            let rate = Double(done * paths) / seconds
            let eta = rate > 0 ? Double((refs.count - done) * paths) / rate : 0
            let width = 30
            let filled = width * done / refs.count
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(
                Data(
                    "\r  simulate [\(bar)] \(done)/\(refs.count) chunks  \(Int(rate).formatted()) paths/s  ETA \(String(format: "%.1f", eta)) s   "
                        .utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func report(_ summary: MonteCarlo.Summary, tasks: Int, elapsed: Duration) {
        let n = Double(summary.paths)
        func meanAndError(_ sum: Double, _ squares: Double) -> (Double, Double) {
            let mean = sum / n
            return (mean, ((squares / n - mean * mean) / n).squareRoot())
        }
        let (european, europeanError) = meanAndError(summary.europeanSum, summary.europeanSquares)
        let (asian, asianError) = meanAndError(summary.asianSum, summary.asianSquares)
        let exact = MonteCarlo.blackScholesCall(
            spot: spot, strike: strike, rate: rate, volatility: volatility, maturity: maturity)
        // Value at risk of holding the underlying to maturity, from the return histogram.
        func quantile(_ q: Double) -> Double {
            var cumulative = 0
            for (index, count) in summary.histogram.enumerated() {
                cumulative += count
                if Double(cumulative) >= q * n {
                    return -1 + 2 * (Double(index) + 0.5) / Double(MonteCarlo.Summary.bins)
                }
            }
            return 1
        }
        let seconds = elapsed.seconds
        print("")
        print(
            "Monte Carlo option pricing: \(summary.paths.formatted()) paths × \(steps) steps, \(tasks) tasks on nodes \(summary.nodes.sorted().joined(separator: ", "))"
        )
        print("  spot \(spot)  strike \(strike)  rate \(rate)  volatility \(volatility)  maturity \(maturity) y")
        print("")
        print("  quantity                         estimate     ± std. error   reference")
        print(
            "  European call                    \(pad(european))  ± \(pad(europeanError, 10))   Black-Scholes \(String(format: "%.4f", exact))"
        )
        print("  Asian (arithmetic) call          \(pad(asian))  ± \(pad(asianError, 10))")
        print("  99% VaR, 1-year log return       \(pad(-quantile(0.01)))")
        print("  95% VaR, 1-year log return       \(pad(-quantile(0.05)))")
        print("")
        let deviation = abs(european - exact) / europeanError
        print(
            "  European estimate is \(String(format: "%.2f", deviation)) standard errors from Black-Scholes\(deviation < 4 ? " (consistent)" : " (INCONSISTENT)")."
        )
        print(
            "  \(String(format: "%.2f", seconds)) s wall, \(Int(Double(summary.paths * steps) / seconds).formatted()) path steps/s."
        )
    }

    private func pad(_ value: Double, _ width: Int = 10) -> String {
        let text = String(format: "%.4f", value)
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
