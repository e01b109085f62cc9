import Foundation
import Shoal
import ShoalTensor
import ShoalTestSupport
import Testing

/// `trading tune`: trials in reused worker actors on a real cluster; programs as trainables.
@Suite(.serialized) struct TuneTests {
    static func folder(_ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "shoal-\(name)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// The `--json` document's trials.
    static func trials(_ path: String) throws -> [[String: Any]] {
        let data = try #require(FileManager.default.contents(atPath: path))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(document["trials"] as? [[String: Any]])
    }

    static func tune(_ arguments: [String], cluster: ClusterProcesses) async throws -> RunningProcess {
        let driver = try cluster.driver(["tune"] + arguments, binary: "trading")
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)")
        return driver
    }

    /// A shell line reading a number from the trial's configuration.
    static func read(_ name: String) -> String {
        #"$(printf '%s' "$SHOAL_TUNE_CONFIG" | sed -n 's/.*"\#(name)":\([0-9.-]*\).*/\1/p')"#
    }

    /// One seed, one sequence: random search with 2 trials at a time and TPE with one give the
    /// same configurations run after run, another seed others.
    @Test func aSeedReproducesTheTrials() async throws {
        let folder = try Self.folder("tune-seed")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        var sequences: [String: [String]] = [:]
        for (run, (search, seed, concurrent)) in [
            ("random", 5, 2), ("random", 5, 2), ("random", 6, 2), ("tpe", 5, 1), ("tpe", 5, 1),
        ]
        .enumerated() {
            let json = folder + "/\(run).json"
            _ = try await Self.tune(
                [
                    "--trainable", "branin", "--search", search, "--num-samples", "25", "--seed", "\(seed)", "--max-concurrent",
                    "\(concurrent)", "--out", folder, "--name", "run\(run)", "--json", json,
                ], cluster: cluster)
            let trials = try Self.trials(json).sorted { ($0["trial_id"] as? Int ?? 0) < ($1["trial_id"] as? Int ?? 0) }
            #expect(trials.count == 25 && trials.allSatisfy { $0["state"] as? String == "TERMINATED" })
            sequences["\(run)"] = try trials.map {
                String(
                    decoding: try JSONSerialization.data(withJSONObject: $0["config"] ?? [:], options: .sortedKeys), as: UTF8.self
                )
            }
        }
        #expect(sequences["0"] == sequences["1"] && sequences["0"] != sequences["2"])
        #expect(sequences["3"] == sequences["4"] && sequences["3"] != sequences["0"])
    }

    /// ASHA on a program with known curves (loss = b + 10/step, b from 1 to 8 in a mixed order): the worse
    /// trials are pruned at the rungs, the best configuration runs its 20 reports, and the
    /// trials share the 2 worker processes.
    @Test func ashaPrunesAndTheBestSurvivesOnReusedWorkers() async throws {
        let folder = try Self.folder("tune-asha")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.write(
            """
            b=\(Self.read("b"))
            i=1
            while [ $i -le 20 ]; do
              echo "step $i"
              awk -v b="$b" -v i="$i" 'BEGIN { printf "{\\"loss\\": %.6f, \\"step\\": %d}\\n", b + 10 / i, i }'
              i=$((i + 1))
            done
            """, to: folder + "/curve.sh")
        try Self.write(#"{"b": {"type": "grid", "values": [4, 8, 1, 7, 2, 6, 3, 5]}}"#, to: folder + "/space.json")
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let json = folder + "/asha.json"
        let driver = try await Self.tune(
            [
                "--command", "sh \(folder)/curve.sh", "--space", folder + "/space.json", "--search", "grid", "--num-samples", "1",
                "--metric", "loss", "--mode", "min", "--scheduler", "asha", "--max-steps", "20", "--reduction-factor", "2",
                "--out", folder, "--name", "asha", "--json", json,
            ], cluster: cluster)
        let trials = try Self.trials(json)
        #expect(trials.count == 8)
        let pruned = trials.filter { $0["state"] as? String == "PRUNED" }
        #expect(pruned.count >= 3, "\(trials)")
        #expect(pruned.allSatisfy { ($0["steps"] as? Int ?? 20) < 20 })
        let best = try #require(trials.first { ($0["config"] as? [String: Any])?["b"] as? Int == 1 })
        #expect(best["state"] as? String == "TERMINATED" && best["steps"] as? Int == 20, "\(best)")
        #expect(
            driver.output.contains { $0.contains("8 trials in") && $0.contains("on 2 worker process(es)") }, "\(driver.output)")
        let log = try String(contentsOfFile: folder + "/asha/trial_0/stdout.log", encoding: .utf8)
        #expect(log.hasPrefix("step 1\n"), "lines that are not reports go to the trial's log")
        #expect(FileManager.default.fileExists(atPath: folder + "/asha/results.csv"))
    }

    /// PBT: a program keeping its state in the checkpoint folder; a trial that exploits
    /// continues from another trial's state (the state lists the trials that carried it).
    @Test func pbtContinuesFromAnotherTrialsCheckpoint() async throws {
        let folder = try Self.folder("tune-pbt")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.write(
            """
            rate=\(Self.read("rate"))
            state="$SHOAL_TUNE_CHECKPOINT_DIR/state"
            if [ -f "$state" ]; then read lineage step score < "$state"; lineage="$lineage-$SHOAL_TUNE_TRIAL_ID"
            else lineage=$SHOAL_TUNE_TRIAL_ID; step=0; score=0; fi
            while [ "$step" -lt 16 ]; do
              step=$((step + 1))
              score=$((score + rate))
              echo "$lineage $step $score" > "$state.tmp" && mv "$state.tmp" "$state"
              echo "{\\"score\\": $score}"
              sleep 0.05
            done
            """, to: folder + "/pbt.sh")
        try Self.write(#"{"rate": {"type": "grid", "values": [1, 2, 3, 4]}}"#, to: folder + "/space.json")
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let json = folder + "/pbt.json"
        _ = try await Self.tune(
            [
                "--command", "sh \(folder)/pbt.sh", "--space", folder + "/space.json", "--search", "grid", "--num-samples", "1",
                "--metric", "score", "--mode", "max", "--scheduler", "pbt", "--pbt-interval", "4", "--max-concurrent", "4",
                "--cpus-per-trial", "0.5", "--out", folder, "--name", "pbt", "--json", json,
            ], cluster: cluster)
        let csv = try String(contentsOfFile: folder + "/pbt/results.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        let exploited = csv.map { $0.split(separator: ",", omittingEmptySubsequences: false) }.filter { Int($0[5]) ?? 0 > 0 }
        #expect(!exploited.isEmpty, "\(csv)")
        for row in exploited {
            let state = try String(contentsOfFile: folder + "/pbt/trial_\(row[0])/checkpoint/state", encoding: .utf8)
            let fields = state.split(separator: " ").map(String.init)
            let lineage = fields.first ?? ""
            // Its program went on from the copy (and signed it), unless the copy was of a trial
            // that had already taken all 16 steps: then there was nothing left to run, and the
            // state is the donor's as it was (its lineage another trial's).
            let continued = lineage.hasSuffix("-\(row[0])")
            let finishedCopy =
                fields.dropFirst().first == "16" && lineage.split(separator: "-").last.map(String.init) != String(row[0])
            #expect(continued || finishedCopy, "trial \(row[0]) carries on another's state: \(state)")
        }
    }

    /// A program that crashes, prints garbage, reports without the metric, or hangs past
    /// --trial-timeout ends as ERROR with the reason; the search goes on and nothing is left running.
    @Test func badProgramsEndAsErrors() async throws {
        let folder = try Self.folder("tune-bad")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.write(
            """
            case "$SHOAL_TUNE_CONFIG" in
              *crash*) echo '{"loss": 1}'; echo "about to fail" >&2; exit 3 ;;
              *garbage*) echo '{not json' ;;
              *hang*) echo '{"loss": 0.5}'; exec sleep 60 ;;
              *nometric*) echo '{"other": 0.5}' ;;
            esac
            echo '{"loss": 0.1}'
            """, to: folder + "/bad.sh")
        try Self.write(
            #"{"kind": {"type": "grid", "values": ["crash", "garbage", "hang", "nometric", "fine"]}}"#, to: folder + "/space.json"
        )
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let json = folder + "/bad.json"
        _ = try await Self.tune(
            [
                "--command", "sh \(folder)/bad.sh", "--space", folder + "/space.json", "--search", "grid", "--metric", "loss",
                "--mode", "min", "--trial-timeout", "2", "--out", folder, "--name", "bad", "--json", json,
            ], cluster: cluster)
        let trials = try Self.trials(json)
        func record(_ kind: String) -> [String: Any]? {
            trials.first { ($0["config"] as? [String: Any])?["kind"] as? String == kind }
        }
        let expected = [
            "crash": "exited with status 3; its stderr ends: about to fail", "garbage": "not a JSON object: {not json",
            "hang": "ran past its time limit", "nometric": "has no finite 'loss'",
        ]
        for (kind, message) in expected {
            let trial = try #require(record(kind))
            #expect(trial["state"] as? String == "ERROR" && (trial["error"] as? String ?? "").contains(message), "\(trial)")
        }
        #expect(record("fine")?["state"] as? String == "TERMINATED")
        // Gone, or going (a SIGKILLed process can take a moment to leave /proc on a loaded machine).
        var survivors = ProcessMemoryScan.processes(named: "sleep", with: "60")
        for _ in 0..<50 where !survivors.isEmpty {
            try await Task.sleep(for: .milliseconds(100))
            survivors = ProcessMemoryScan.processes(named: "sleep", with: "60")
        }
        #expect(survivors.isEmpty, "the hung program was stopped: \(survivors)")

        // Built-in trainables: the time limit is checked before each step (one far below a
        // step's cost ends every trial at its first).
        let builtIn = folder + "/builtin.json"
        _ = try await Self.tune(
            [
                "--trainable", "branin", "--num-samples", "3", "--trial-timeout", "0.000001", "--out", folder, "--name",
                "limited",
                "--json", builtIn,
            ], cluster: cluster)
        let limited = try Self.trials(builtIn)
        #expect(limited.count == 3)
        #expect(
            limited.allSatisfy {
                $0["state"] as? String == "ERROR" && ($0["error"] as? String ?? "").contains("ran past its time limit")
            }, "\(limited)")
    }
}

extension TuneTests {
    /// A worker killed with SIGKILL while its trial's program runs leaves no program behind:
    /// the watchdog in the program's process group ends the group once the worker is gone.
    @Test func aKilledWorkersProgramDoesNotOutliveIt() async throws {
        let folder = try Self.folder("tune-orphan")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.write(
            """
            echo $$ > "\(folder)/program.pid"
            echo '{"loss": 1}'
            exec sleep 45
            """, to: folder + "/hang.sh")
        try Self.write(#"{"x": {"type": "uniform", "low": 0, "high": 1}}"#, to: folder + "/space.json")
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(
            [
                "tune", "--command", "sh \(folder)/hang.sh", "--space", folder + "/space.json", "--num-samples", "1", "--metric",
                "loss", "--mode", "min",
                "--max-failures", "0", "--out", folder, "--name", "orphan",
            ], binary: "trading")
        defer { driver.killTree() }
        var program: Int32?
        for _ in 0..<600 where program == nil && driver.isRunning {
            program = (try? String(contentsOfFile: folder + "/program.pid", encoding: .utf8))
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            try await Task.sleep(for: .milliseconds(50))
        }
        let programPid = try #require(program, "the program never started: \(driver.output)")
        // The program's parent is the supervising shell; its parent the worker.
        func parent(of pid: Int32) -> Int32? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return nil }
            return stat[stat.index(after: close)...].split(separator: " ").dropFirst().first.flatMap { Int32($0) }
        }
        // Up the tree to the supervising shell (its arguments name it shoal-trial); its parent is the worker.
        func arguments(_ pid: Int32) -> [String] {
            (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()).split(separator: 0).map {
                String(decoding: $0, as: UTF8.self)
            }
        }
        var above = parent(of: programPid)
        while let pid = above, pid > 1, !arguments(pid).contains("shoal-trial") { above = parent(of: pid) }
        let supervisor = try #require(above, "no supervising shell above the program")
        let worker = try #require(parent(of: supervisor))
        #expect(arguments(supervisor).contains(String(worker)), "the shell watches its parent, the worker")
        #expect(kill(worker, SIGKILL) == 0)
        var gone = false
        for _ in 0..<200 where !gone {
            try await Task.sleep(for: .milliseconds(50))
            gone = kill(programPid, 0) != 0
        }
        #expect(gone, "the program \(programPid) outlived its worker \(worker)")
    }

    /// A search whose driver is SIGKILLed mid-way is finished by `trading tune --resume NAME`
    /// from its journal in the head: exactly its 8 trials, the finished ones not run again (a
    /// trial runs twice only if it was running at the kill, so at most 2).
    @Test func aResumedSearchFinishesWithEveryTrialOnce() async throws {
        let folder = try Self.folder("tune-resume")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.write(
            """
            echo "$SHOAL_TUNE_TRIAL_ID" >> \(folder)/starts.log
            x=\(Self.read("x"))
            for i in 1 2 3; do sleep 0.2; echo "{\\"loss\\": $x}"; done
            """, to: folder + "/slow.sh")
        try Self.write(#"{"x": {"type": "randint", "low": 0, "high": 100}}"#, to: folder + "/space.json")
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let first = try cluster.driver(
            [
                "tune", "--command", "sh \(folder)/slow.sh", "--space", folder + "/space.json", "--num-samples", "8", "--metric",
                "loss", "--mode", "min", "--out", folder, "--name", "resumable",
            ], binary: "trading")
        // Killed once some trials have finished and others run.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let starts = (try? String(contentsOfFile: folder + "/starts.log", encoding: .utf8)) ?? ""
            if starts.split(separator: "\n").count >= 4 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        first.signal(SIGKILL)
        _ = try await first.waitForExit(timeout: .seconds(30))
        let json = folder + "/resumed.json"
        let again = try await Self.tune(["--resume", "resumable", "--json", json], cluster: cluster)
        #expect(again.output.contains { $0.hasPrefix("Resuming resumable:") }, "\(again.output)")
        let trials = try Self.trials(json)
        #expect(trials.compactMap { $0["trial_id"] as? Int }.sorted() == Array(0..<8), "\(trials)")
        #expect(trials.allSatisfy { $0["state"] as? String == "TERMINATED" && $0["steps"] as? Int == 3 }, "\(trials)")
        let starts = try String(contentsOfFile: folder + "/starts.log", encoding: .utf8).split(separator: "\n").map(String.init)
        let counts = Dictionary(starts.map { ($0, 1) }, uniquingKeysWith: +)
        #expect(Set(counts.keys) == Set((0..<8).map(String.init)))
        #expect(counts.values.allSatisfy { $0 <= 2 } && counts.values.filter { $0 == 2 }.count <= 2, "\(counts)")
        // The name is the experiment's: a new search cannot take it.
        let taken = try cluster.driver(
            ["tune", "--trainable", "branin", "--num-samples", "2", "--out", folder, "--name", "resumable"], binary: "trading")
        #expect(try await taken.waitForExit(timeout: .seconds(60)) != 0)
        #expect(taken.output.contains { $0.contains("has an experiment named 'resumable' already") }, "\(taken.output)")
    }
}

extension TuneTests {
    /// `--register NAME --alias A`: the best finished trial's model (here the hybrid model's
    /// best epoch) reaches the registry with its configuration, its curve and its lineage.
    @Test func theBestTrialsModelIsRegistered() async throws {
        let folder = try Self.folder("tune-register")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.write(
            #"{"learningRate": {"type": "grid", "values": [0.0001, 0.003]}}"#, to: folder + "/space.json")
        try Self.write(
            """
            {"epochs": 2, "patience": 0, "batchSize": 32, "data": {"bars": 1500, "steps": 16},
             "model": {"convChannels": 4, "kernels": [3, 5], "heads": 2, "lstmHidden": 4, "lstmLayers": 1, "fusionSize": 8}}
            """, to: folder + "/base.json")
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let json = folder + "/hybrid.json"
        let driver = try await Self.tune(
            [
                "--trainable", "hybrid", "--space", folder + "/space.json", "--base-config", folder + "/base.json", "--search",
                "grid", "--num-samples", "1", "--out", folder, "--name", "hybrid-search", "--json", json, "--register",
                "tuned-hybrid", "--alias", "staging",
            ], cluster: cluster)
        #expect(
            driver.output.contains { $0.hasPrefix("Registered tuned-hybrid version 1 as staging: trial ") }, "\(driver.output)")
        let document = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let best = try #require(document["best"] as? [String: Any])
        let registry = try ModelRegistry(address: cluster.address, identity: "checker")
        let (version, artifact) = try registry.load(name: "tuned-hybrid", alias: "staging")
        #expect(version.parameters["trial"] == "\(best["trial_id"] as? Int ?? -1)" && version.parameters["trainable"] == "hybrid")
        #expect(version.parameters["experiment"] == "hybrid-search" && version.parameters["learningRate"] != nil)
        #expect(version.metrics["best_val_loss"]?.count == 3, "the curve, one point an epoch, and the final value")
        #expect(version.lineage.dataSHA256.count == 64 && !version.lineage.jobID.isEmpty)
        let tensors = try SafeTensors.decode(artifact, source: "the registered model").tensors
        #expect(tensors.keys.contains { $0.hasPrefix("lstm") } && tensors.count > 10, "\(tensors.keys.sorted().prefix(5))")
        // A trainable without a model cannot be registered.
        let refused = try cluster.driver(
            ["tune", "--trainable", "branin", "--num-samples", "2", "--out", folder, "--register", "x"], binary: "trading")
        #expect(try await refused.waitForExit(timeout: .seconds(60)) != 0)
        #expect(refused.output.contains { $0.contains("--register takes a built-in trainable with a model") })
    }
}

/// Processes by name and argument, from /proc.
enum ProcessMemoryScan {
    static func processes(named name: String, with argument: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let parts = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return parts.first.map { $0.hasSuffix(name) } == true && parts.dropFirst().contains(argument)
        }
    }
}
