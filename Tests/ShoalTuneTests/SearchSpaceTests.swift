import Foundation
import ShoalMarket
import Testing

@testable import ShoalTune

struct SearchSpaceTests {
    static func write(_ text: String, _ name: String) throws -> String {
        let path = NSTemporaryDirectory() + "shoal-space-\(UInt32.random(in: 0...UInt32.max))-" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Every domain type reads from JSON and from YAML alike; plain values are constants.
    @Test func spacesReadFromJSONAndYAML() throws {
        let json = try Self.write(
            """
            {"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-1}, "layers": {"type": "randint", "low": 1, "high": 8},
             "act": {"type": "choice", "values": ["relu", "tanh"]}, "drop": {"type": "quniform", "low": 0, "high": 0.5, "q": 0.1},
             "m": {"type": "uniform", "low": 0.8, "high": 0.99}, "batch": {"type": "grid", "values": [32, 64]}, "epochs": 3}
            """, "space.json")
        let yaml = try Self.write(
            """
            lr: {type: loguniform, low: 1.0e-5, high: 1.0e-1}
            layers: {type: randint, low: 1, high: 8}
            act: {type: choice, values: [relu, tanh]}
            drop: {type: quniform, low: 0, high: 0.5, q: 0.1}
            m: {type: uniform, low: 0.8, high: 0.99}
            batch: {type: grid, values: [32, 64]}
            epochs: 3
            """, "space.yaml")
        let fromJSON = try SearchSpace(file: json)
        #expect(try SearchSpace(file: yaml) == fromJSON)
        #expect(fromJSON.parameters.map(\.name) == ["act", "batch", "drop", "epochs", "layers", "lr", "m"])
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<500 {
            let config = fromJSON.sample(using: &generator)
            let lr = try #require(config["lr"]?.number)
            #expect(lr >= 1e-5 && lr <= 1e-1)
            guard case .int(let layers) = config["layers"] else { Issue.record("randint gives integers"); return }
            #expect((1..<8).contains(layers), "randint excludes its high end")
            let drop = try #require(config["drop"]?.number)
            #expect(abs(drop * 10 - (drop * 10).rounded()) < 1e-9 && drop <= 0.5)
            #expect(config["epochs"] == .int(3) && [TuneValue.string("relu"), .string("tanh")].contains(config["act"]!))
        }
        #expect(fromJSON.grid.count == 2)
    }

    /// A bad file names the file and what is wrong in it.
    @Test func badSpacesSayWhatIsWrong() throws {
        let cases: [(String, String)] = [
            (#"{"lr": {"type": "loguniform", "low": 0, "high": 1}}"#, "parameter 'lr': loguniform needs 0 < low"),
            (#"{"n": {"type": "randint", "low": 5, "high": 5}}"#, "parameter 'n': randint needs low < high"),
            (#"{"x": {"type": "gaussian", "low": 0, "high": 1}}"#, "unknown type 'gaussian'"),
            (#"{"x": {"type": "uniform", "low": 0}}"#, "missing 'high'"),
            (#"{"c": {"type": "choice", "values": []}}"#, "parameter 'c': needs at least one value"),
            (#"[1, 2]"#, "is not a search space"),
            ("{}", "has no parameters"),
        ]
        for (text, expected) in cases {
            let path = try Self.write(text, "bad.json")
            #expect {
                try SearchSpace(file: path)
            } throws: { error in
                let message = (error as? TuneError)?.message ?? ""
                return message.contains(expected) && message.contains(path)
            }
        }
        #expect(throws: TuneError.self) { try SearchSpace(file: "/nonexistent/space.json") }
    }

    /// A configuration reaches a trial as one JSON object whose values keep their types.
    @Test func configurationsTravelAsJSONObjects() throws {
        let config = TrialConfig(["lr": .double(0.001), "layers": .int(3), "act": .string("relu"), "bn": .bool(true)])
        #expect(config.json == #"{"act":"relu","bn":true,"layers":3,"lr":0.001}"#)
        #expect(try JSONDecoder().decode(TrialConfig.self, from: Data(config.json.utf8)) == config)
    }
}

struct SearcherTests {
    static let space = TestFunction.branin.space

    /// One seed, one sequence of configurations: random, grid and TPE.
    @Test func aSeedReproducesTheTrialSequence() throws {
        func sequence(_ make: () throws -> any Searcher) rethrows -> [TrialConfig] {
            var searcher = try make()
            var configs: [TrialConfig] = []
            for trial in 0..<30 {
                guard let config = searcher.suggest(trial) else { break }
                configs.append(config)
                searcher.observe(trial, config: config, loss: TestFunction.branin.value(config))
            }
            return configs
        }
        #expect(
            sequence { RandomSearch(space: Self.space, samples: 30, seed: 7) }
                == sequence { RandomSearch(space: Self.space, samples: 30, seed: 7) })
        #expect(
            sequence { RandomSearch(space: Self.space, samples: 30, seed: 7) }
                != sequence { RandomSearch(space: Self.space, samples: 30, seed: 8) })
        #expect(
            sequence { TPESearch(space: Self.space, samples: 30, seed: 7) }
                == sequence { TPESearch(space: Self.space, samples: 30, seed: 7) })
        let grid = try SearchSpace([
            "a": .grid([.int(1), .int(2), .int(3)]), "b": .grid([.string("x"), .string("y")]), "c": .uniform(low: 0, high: 1),
        ])
        let walked = try sequence { try GridSearch(space: grid, samples: 2, seed: 1) }
        #expect(walked.count == 12, "the 3 × 2 grid twice")
        #expect(Set(walked.prefix(6).map { "\($0["a"]!)\($0["b"]!)" }).count == 6)
        #expect(throws: TuneError.self) { try GridSearch(space: Self.space, samples: 1, seed: 0) }
    }

    /// TPE does better than random search on Branin at equal trials (median of 9 seeds).
    @Test func tpeBeatsRandomSearchOnBranin() {
        func best(_ searcher: inout some Searcher) -> Double {
            var best = Double.infinity
            for trial in 0..<80 {
                guard let config = searcher.suggest(trial), let value = TestFunction.branin.value(config) else { break }
                searcher.observe(trial, config: config, loss: value)
                best = min(best, value)
            }
            return best
        }
        var tpe: [Double] = []
        var random: [Double] = []
        for seed in UInt64(0)..<9 {
            var a = TPESearch(space: Self.space, samples: 80, seed: seed)
            var b = RandomSearch(space: Self.space, samples: 80, seed: seed)
            tpe.append(best(&a))
            random.append(best(&b))
        }
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        #expect(median(tpe) < median(random), "TPE \(median(tpe)), random \(median(random))")
        #expect(median(tpe) < 0.6, "Branin's minimum is 0.398: \(tpe.sorted())")
    }

    /// TPE's draws stay inside their domains: integers, quantised values, log ranges, choices.
    @Test func tpeStaysInsideTheDomains() {
        let space = TestFunction.styblinskiTang.space
        var searcher = TPESearch(space: space, samples: 60, seed: 2)
        for trial in 0..<60 {
            guard let config = searcher.suggest(trial) else { break }
            let x1 = config["x1"]?.number ?? 0
            #expect(x1 >= 1 && x1 <= 11)
            guard case .int(let x2) = config["x2"], case .int(let x3) = config["x3"] else {
                Issue.record("integers stay integers: \(config)")
                return
            }
            #expect((-5..<6).contains(x2) && (-5...5).contains(x3))
            searcher.observe(trial, config: config, loss: TestFunction.styblinskiTang.value(config))
        }
    }
}

struct SchedulerTests {
    static let config = TrialConfig()

    /// ASHA's rungs with reduction factor 2 and grace 1 below 8 steps: 1, 2, 4. A trial below
    /// the rung's median stops there; the first at a rung goes on; every trial ends at 8.
    @Test func ashaStopsTrialsBelowTheRungsQuantile() throws {
        var asha = try ASHAScheduler(maxSteps: 8, grace: 1, reductionFactor: 2)
        #expect(asha.brackets[0].map(\.milestone) == [4, 2, 1])
        #expect(asha.report(0, step: 1, score: 0.5, config: Self.config) == .proceed, "the first at a rung goes on")
        #expect(asha.report(1, step: 1, score: 0.9, config: Self.config) == .proceed)
        #expect(asha.report(2, step: 1, score: 0.1, config: Self.config) == .stop, "below the median of 0.5, 0.9, 0.1")
        #expect(asha.report(1, step: 3, score: 0.9, config: Self.config) == .proceed, "no rung at 3")
        #expect(asha.report(1, step: 8, score: 0.9, config: Self.config) == .finish)
        let hyperBand = try ASHAScheduler.hyperBand(maxSteps: 8, grace: 1, reductionFactor: 2)
        #expect(hyperBand.brackets.map { $0.map(\.milestone) } == [[4, 2, 1], [4, 2], [4]])
        #expect(throws: TuneError.self) { try ASHAScheduler(maxSteps: 1, grace: 1, reductionFactor: 2) }
    }

    /// The median rule stops a trial whose best is below the others' running means, once
    /// enough others have reached the step.
    @Test func medianStoppingComparesWithTheOthersRunningMeans() {
        var median = MedianStoppingScheduler(grace: 1, minimumTrials: 2)
        for trial in 0..<2 {
            for step in 1...3 { _ = median.report(trial, step: step, score: Double(step), config: Self.config) }
        }
        #expect(median.report(2, step: 1, score: 0.1, config: Self.config) == .proceed, "within the grace")
        #expect(median.report(2, step: 2, score: 0.2, config: Self.config) == .stop, "best 0.2 < the others' mean 1.5")
        #expect(median.report(3, step: 1, score: 3, config: Self.config) == .proceed)
        #expect(median.report(3, step: 2, score: 3, config: Self.config) == .proceed)
    }

    /// PBT: at an interval, the bottom quantile takes a top trial's checkpoint with its
    /// configuration perturbed within the domains; the top goes on.
    @Test func pbtExploitsTheTopAndExploresAroundIt() throws {
        let space = try SearchSpace([
            "lr": .loguniform(low: 1e-4, high: 1e-1), "act": .choice([.string("a"), .string("b"), .string("c")]),
        ])
        var pbt = try PBTScheduler(space: space, interval: 2, quantile: 0.25, resampleProbability: 0, seed: 1)
        let configs = (0..<4).map { TrialConfig(["lr": .double(0.01 * Double($0 + 1)), "act": .string("b")]) }
        for trial in 0..<4 { #expect(pbt.report(trial, step: 1, score: Double(trial), config: configs[trial]) == .proceed) }
        for trial in 1..<4 { _ = pbt.report(trial, step: 2, score: Double(trial), config: configs[trial]) }
        guard case .exploit(let donor, let explored) = pbt.report(0, step: 2, score: 0, config: configs[0]) else {
            Issue.record("the worst trial exploits")
            return
        }
        #expect(donor == 3)
        let lr = try #require(explored["lr"]?.number)
        #expect(abs(lr - 0.04 * 0.8) < 1e-12 || abs(lr - 0.04 * 1.2) < 1e-12)
        #expect(["a", "c"].map { TuneValue.string($0) }.contains(explored["act"]!), "a choice moves to a neighbour")
        #expect(pbt.report(3, step: 4, score: 10, config: configs[3]) == .proceed, "the best goes on")
    }
}
