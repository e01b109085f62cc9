import Foundation
import ShoalTestSupport
import Testing

/// `trading backtest run` as a user runs it: the rebalancing options, the risk manager's file and
/// record, and a misspelt limit refused by name.
@Suite(.serialized) struct BacktestCommandTests {
    /// Runs `trading backtest run`; an embedded cluster (walk-forward) gets a session folder of
    /// its own, so that no cluster running on this machine is joined.
    static func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let session = NSTemporaryDirectory() + "shoal-backtest-session-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: session) }
        let process = try RunningProcess(
            binaryPath("trading"), ["backtest", "run"] + arguments, environment: ["SHOAL_SESSION_DIR": session])
        let status = try await process.waitForExit(timeout: .seconds(120))
        return (status, process.output.joined(separator: "\n"))
    }

    /// The page in headless Chromium (the real browser `make test` installs): every plot decodes,
    /// the heat map is there, and the console says nothing but the probe's line. The probe, a
    /// script added to a copy, reports what the browser made of the page once it loaded.
    static func rendersInABrowser(_ page: String, folder: String) async throws {
        let probe = """
            <script>window.addEventListener("load", () => {
              const images = [...document.images];
              const decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;
              const result = document.createElement("pre");
              result.id = "probe";
              result.textContent = `images ${images.length} decoded ${decoded} cells ${document.querySelectorAll("table.heatmap td").length}`;
              document.body.appendChild(result);
              console.log("probe done");
            });</script>
            """
        let path = folder + "/probe.html"
        try Data(page.replacingOccurrences(of: "</body>", with: probe + "</body>").utf8).write(to: URL(fileURLWithPath: path))
        let browser = try RunningProcess(
            "/usr/bin/chromium",
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                "--user-data-dir=\(folder)/chromium", "--dump-dom", "file://" + path,
            ])
        #expect(try await browser.waitForExit(timeout: .seconds(120)) == 0, "\(browser.output.suffix(20))")
        let result = try #require(
            browser.output.compactMap { line in
                line.range(of: "<pre id=\"probe\">").map { String(line[$0.upperBound...].prefix { $0 != "<" }) }
            }.first, "\(browser.output.suffix(20))")
        let numbers = result.split(separator: " ").compactMap { Int($0) }
        #expect(numbers.count == 3 && numbers[0] == 4 && numbers[1] == 4 && numbers[2] > 0, "\(result)")
        let console = browser.output.filter { $0.contains(":CONSOLE") }
        #expect(console.count == 1 && console[0].contains("probe done"), "\(console)")
    }

    @Test func riskLimitsRunThroughTheManagerAndAreRecorded() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("backtest-cli-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let limits = folder + "/risk.json"
        try Data(#"{"max_position_fraction": 0.2, "stop_loss": 0.002}"#.utf8).write(to: URL(fileURLWithPath: limits))
        let out = folder + "/run"
        let (status, output) = try await Self.run([
            "--bars", "3000", "--strategy", "sma", "--rebalance", "weekly", "--vol-target", "0.3", "--min-trade", "0.001",
            "--risk", limits, "--out", out,
        ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("Risk manager:"), "\(output)")
        let metrics = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metrics.json")))
                as? [String: Any])
        let counts = try #require(metrics["risk_interventions"] as? [String: Int])
        #expect((counts["position_fraction"] ?? 0) > 0 && (counts["stop_loss"] ?? 0) > 0, "\(counts)")
        let record = try String(contentsOfFile: out + "/interventions.csv", encoding: .utf8)
        #expect(record.hasPrefix("bar,timestamp,symbol,rule,action,requested,allowed,detail\n"))
        #expect(record.split(separator: "\n").count == counts.values.reduce(0, +) + 1)
        let page = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        #expect(
            page.contains("<table class=\"heatmap\">") && page.contains("<h2>Risk manager</h2>")
                && page.contains("position_fraction"))
        try await Self.rendersInABrowser(page, folder: folder)

        try Data(#"{"stoploss": 0.05}"#.utf8).write(to: URL(fileURLWithPath: limits))
        let (badStatus, badOutput) = try await Self.run(["--bars", "500", "--risk", limits, "--out", out])
        #expect(badStatus != 0 && badOutput.contains("unknown risk limit 'stoploss'"), "\(badOutput)")
        let (ruleStatus, ruleOutput) = try await Self.run(["--bars", "500", "--rebalance", "fortnightly", "--out", out])
        #expect(ruleStatus != 0 && ruleOutput.contains("--rebalance 'fortnightly'"), "\(ruleOutput)")
    }

    /// Walk-forward folds run as tasks on a real two-node cluster: each fits the crossover on
    /// its training span and trades its test span; the stitched curve chains their returns.
    @Test func walkForwardFoldsRunOnTheCluster() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("backtest-walk-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cluster = try await ClusterProcesses(cpus: 1)
        defer { cluster.stop() }
        _ = try await cluster.addNode("second", cpus: 1)
        let driver = try cluster.driver(
            [
                "backtest", "run", "--strategy", "sma", "--bars", "2400", "--walk-forward", "rolling", "--train-bars", "600",
                "--test-bars", "300", "--grid", "5:20,10:50", "--out", folder,
            ], binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        let metrics = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/metrics.json")))
                as? [String: Any])
        let folds = try #require(metrics["folds"] as? [[String: Any]])
        #expect(folds.count == 6, "(2,400 - 600) / 300 test spans")
        let chained = folds.reduce(1.0) { $0 * (1 + ($1["return"] as? Double ?? .nan)) }
        let final = try #require(metrics["final_equity"] as? Double)
        #expect(abs(final / 1_000_000 - chained) < 1e-9, "\(final) and \(chained)")
        #expect(folds.allSatisfy { ($0["fitted"] as? String ?? "").hasPrefix("fast ") })
        #expect(Set(folds.compactMap { $0["node"] as? String }).count >= 1)
        let table = try String(contentsOfFile: folder + "/folds.csv", encoding: .utf8).split(separator: "\n")
        #expect(table.count == 7 && table[1].hasPrefix("0,0,600,600,900,"))
        #expect(driver.output.contains { $0.hasPrefix("Out of sample over 6 folds (1800 bars)") }, "\(driver.output)")
        // Every fill of every fold, on the market's bars, inside its fold's test span.
        let trades = try String(contentsOfFile: folder + "/trades.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        #expect(trades.count == folds.reduce(0) { $0 + ($1["fills"] as? Int ?? 0) })
        #expect(
            trades.allSatisfy { row in
                let fields = row.split(separator: ",")
                guard let fold = Int(fields[0]), let bar = Int(fields[1]) else { return false }
                return bar >= 600 + 300 * fold && bar < 900 + 300 * fold
            })
    }

    /// An agent trained by trading rl train runs again through its market's validation and
    /// test spans; its positions are traded as signals when validation beats cash.
    @Test func agentsAreBacktestedFromTheirFolder() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("backtest-agent-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let train = try RunningProcess(
            binaryPath("trading"),
            ["rl", "train", "--algo", "ppo", "--env", "trading", "--bars", "2000", "--steps", "2048", "--out", folder + "/agent"])
        #expect(try await train.waitForExit(timeout: .seconds(300)) == 0, "\(train.output.joined(separator: "\n"))")
        #expect(FileManager.default.fileExists(atPath: folder + "/agent/agent.json"))
        let out = folder + "/run"
        let (status, output) = try await Self.run(["--strategy", "agent", "--agent-dir", folder + "/agent", "--out", out])
        #expect(status == 0 && output.contains("Validation (bars 1400 to 1700) after costs:"), "\(output)")
        let metrics = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metrics.json")))
                as? [String: Any])
        let traded = try #require(metrics["signal_traded"] as? Bool)
        if !traded { #expect(metrics["trades"] as? Int == 0) }
        let signals = try String(contentsOfFile: out + "/signals.csv", encoding: .utf8).split(separator: "\n")
        #expect(signals.count - 1 == 299, "a signal a bar of the test span (bars 1700 to 2000) but its last")
        #expect(signals.dropFirst().allSatisfy { $0.hasSuffix("ppo (agent)") })
        let (badStatus, badOutput) = try await Self.run(["--strategy", "agent", "--agent-dir", folder, "--out", out])
        #expect(badStatus != 0 && badOutput.contains("agent.json"), "\(badOutput)")

        // Walk-forward: each fold trains a new agent from the recipe on its own training span.
        let walk = folder + "/walk"
        let (walkStatus, walkOutput) = try await Self.run([
            "--strategy", "agent", "--agent-dir", folder + "/agent", "--walk-forward", "rolling", "--train-bars", "800",
            "--test-bars", "600", "--out", walk,
        ])
        #expect(walkStatus == 0 && walkOutput.contains("Out of sample over 2 folds (1200 bars)"), "\(walkOutput)")
        let table = try String(contentsOfFile: walk + "/folds.csv", encoding: .utf8)
        #expect(table.split(separator: "\n").dropFirst().allSatisfy { $0.contains("trained 2048 steps; validation") }, "\(table)")
    }

    /// A model trained by trading model train gives signals on its market's test span, traded
    /// only when its validation span beat cash after costs.
    @Test func hybridSignalsAreValidatedThenTraded() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("backtest-hybrid-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let train = try RunningProcess(
            binaryPath("trading"),
            ["model", "train", "--bars", "1500", "--model-size", "small", "--max-steps", "3", "--out", folder + "/model"])
        #expect(try await train.waitForExit(timeout: .seconds(300)) == 0, "\(train.output.joined(separator: "\n"))")
        let out = folder + "/run"
        let (status, output) = try await Self.run([
            "--strategy", "hybrid", "--model-dir", folder + "/model", "--passes", "4", "--min-confidence", "0.4", "--out", out,
        ])
        #expect(status == 0 && output.contains("Validation (bars 1050 to 1275) after costs:"), "\(output)")
        let metrics = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metrics.json")))
                as? [String: Any])
        let traded = try #require(metrics["signal_traded"] as? Bool)
        let validation = try #require(metrics["signal_validation_return"] as? Double)
        #expect(traded == (validation > 0))
        if !traded { #expect(metrics["trades"] as? Int == 0, "a source that lost to cash is not traded") }
        let signals = try String(contentsOfFile: out + "/signals.csv", encoding: .utf8).split(separator: "\n")
        #expect(signals.first == "bar,timestamp,symbol,action,target_weight,confidence,disagreement,model")
        #expect(signals.count - 1 == 4 * 225, "every asset at every bar of the test span (bars 1275 to 1500)")
        let (badStatus, badOutput) = try await Self.run(["--strategy", "hybrid", "--out", out])
        #expect(badStatus != 0 && badOutput.contains("--model-dir"), "\(badOutput)")
    }
}
