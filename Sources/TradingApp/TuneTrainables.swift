import Foundation
import Shoal
import ShoalMarket
import ShoalRL
import ShoalTensor
import ShoalTrain
import ShoalTune

/// The trainables `trading tune --trainable NAME` runs, and what each optimises by default.
enum TuneTrainables {
    struct BuiltIn {
        let metric: String
        let mode: TuneOptions.Mode
        /// The space searched when `--space` is not given.
        let space: SearchSpace?
        let summary: String
        let make: TrainableFactory
    }

    /// The built-in trainables by name.
    static var all: [String: BuiltIn] {
        var builtIns: [String: BuiltIn] = [:]
        for function in TestFunction.allCases {
            builtIns[function.rawValue] = BuiltIn(
                metric: "value", mode: .min, space: function.space,
                summary: "the \(function.rawValue) test function, one report (a trivial trial)",
                make: { context in
                    FunctionTrainable(context, iterations: 1) { config, _ in
                        guard let value = function.value(config) else {
                            throw TuneError("\(function.rawValue) needs the parameters \(function.space.parameters.map(\.name))")
                        }
                        return ["value": value]
                    }
                })
        }
        builtIns["ppo"] = BuiltIn(
            metric: "episode_return_mean", mode: .max, space: nil, summary: "PPO on CartPole-v1, 2,048 steps a report",
            make: { context in
                try RLTrainable(context, base: TuneTrainables.base(context), iteration: 2048) { (config: PPO<CartPole>.Config) in
                    (try PPO(config: config) { _ in CartPole() }, CartPole())
                }
            })
        builtIns["rainbow"] = BuiltIn(
            metric: "episode_return_mean", mode: .max, space: nil, summary: "Rainbow on CartPole-v1, 2,000 steps a report",
            make: { context in
                try RLTrainable(context, base: TuneTrainables.base(context), iteration: 2000) {
                    (config: Rainbow<CartPole>.Config) in
                    (try Rainbow(config: config, environment: CartPole()), CartPole())
                }
            })
        builtIns["sac"] = BuiltIn(
            metric: "episode_return_mean", mode: .max, space: nil, summary: "SAC on Pendulum-v1, 1,000 steps a report",
            make: { context in
                try RLTrainable(context, base: TuneTrainables.base(context), iteration: 1000, total: 20_000) {
                    (config: SAC<Pendulum>.Config) in
                    (try SAC(config: config, environment: Pendulum()), Pendulum())
                }
            })
        builtIns["td3"] = BuiltIn(
            metric: "episode_return_mean", mode: .max, space: nil, summary: "TD3 on Pendulum-v1, 1,000 steps a report",
            make: { context in
                try RLTrainable(context, base: TuneTrainables.base(context), iteration: 1000, total: 20_000) {
                    (config: TD3<Pendulum>.Config) in
                    (try TD3(config: config, environment: Pendulum()), Pendulum())
                }
            })
        builtIns["hybrid"] = BuiltIn(
            metric: "best_val_loss", mode: .min, space: nil,
            summary: "the hybrid model's training loop (trading model train), one epoch a report",
            make: { context in try await HybridTrainable(context, base: TuneTrainables.base(context)) })
        return builtIns
    }

    /// The factories, for the trial worker's actor type.
    static var factories: [String: TrainableFactory] { all.mapValues(\.make) }

    /// The search's shared settings (`--base-config`) as an object.
    /// - Throws: `TuneError` when they are not a JSON object.
    static func base(_ context: TrialContext) throws -> [String: Any] {
        guard let text = context.baseSettings else { return [:] }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw TuneError("the base settings are not a JSON object")
        }
        return object
    }

    /// `defaults` (a Codable configuration) with `base`, then the trial's values, laid over it.
    /// A key names a setting, or a nested one with dots (`model.dropout`); a key found only
    /// inside `model` may be given alone (`dropout`); an object merges into an object setting.
    /// - Throws: `TuneError` naming a setting the configuration does not have, or a value of the
    ///   wrong type.
    static func overlay<Config: Codable>(
        _ defaults: Config, base: [String: Any], trial: TrialConfig, what: String
    ) throws -> Config {
        guard var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(defaults)) as? [String: Any] else {
            throw TuneError("\(what): its configuration is not an object")
        }
        func set(_ path: [String], _ value: Any, in object: inout [String: Any]) -> Bool {
            guard let key = path.first else { return false }
            if path.count == 1 {
                guard let existing = object[key] else { return false }
                // An object merges into the setting's object, key by key.
                if var inner = existing as? [String: Any], let given = value as? [String: Any] {
                    for (name, part) in given where !set([name], part, in: &inner) { return false }
                    object[key] = inner
                } else {
                    object[key] = value
                }
                return true
            }
            guard var inner = object[key] as? [String: Any], set(Array(path.dropFirst()), value, in: &inner) else { return false }
            object[key] = inner
            return true
        }
        let trialValues: [(String, Any)] = trial.values.map { name, value in
            switch value {
            case .int(let number): (name, number)
            case .double(let number): (name, number)
            case .string(let text): (name, text)
            case .bool(let flag): (name, flag)
            }
        }
        for (name, value) in base.sorted(by: { $0.key < $1.key }) + trialValues.sorted(by: { $0.0 < $1.0 }) {
            let path = name.split(separator: ".").map(String.init)
            if set(path, value, in: &object) { continue }
            if path.count == 1, var model = object["model"] as? [String: Any], set(path, value, in: &model) {
                object["model"] = model
                continue
            }
            throw TuneError("\(what) has no setting '\(name)'")
        }
        do {
            return try JSONDecoder().decode(Config.self, from: JSONSerialization.data(withJSONObject: object))
        } catch {
            throw TuneError("\(what): the trial's settings do not fit: \(error)")
        }
    }
}

/// An RL algorithm as a trainable: each report trains `iteration` environment steps, then
/// evaluates the deterministic policy over 5 episodes (`episode_return_mean`); a checkpoint
/// holds the networks and the steps done.
actor RLTrainable: Trainable {
    let agent: any Agent
    let environmentName: String
    let evaluate: () -> Double
    let iteration: Int
    let total: Int
    var stepsDone = 0

    init<Config: Codable, Base: Environment>(
        _ context: TrialContext, base: [String: Any], iteration: Int, total: Int = 100_000,
        build: (Config) throws -> (any Agent, Base)
    ) throws where Config: DefaultConstructible {
        let config = try TuneTrainables.overlay(Config(), base: base, trial: context.config, what: "this trainable")
        let (agent, environment) = try build(config)
        self.agent = agent
        environmentName = "\(Base.self)"
        self.iteration = (base["iterationSteps"] as? Int) ?? iteration
        self.total =
            (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any])?["totalSteps"] as? Int
            ?? total
        let seed = UInt64(context.trial) &* 1000
        evaluate = { Evaluation.run(agent, environment: environment, episodes: 5, seed: seed).mean }
    }

    func step() async throws -> TrialReport {
        let steps = min(iteration, total - stepsDone)
        agent.train(steps: steps)
        stepsDone += steps
        let recent = agent.episodeReturns.suffix(100)
        return TrialReport(
            metrics: [
                "episode_return_mean": evaluate(), "timesteps_total": Double(stepsDone),
                "train_return_mean": recent.isEmpty ? .nan : recent.reduce(0, +) / Double(recent.count),
            ], done: stepsDone >= total)
    }

    func save() throws -> [UInt8] {
        try SafeTensors.encode(agent.checkpoint(), metadata: ["steps_done": String(stepsDone)])
    }

    func restore(_ checkpoint: [UInt8]) throws {
        let (tensors, metadata) = try SafeTensors.decode(checkpoint, source: "the checkpoint")
        try agent.restore(tensors)
        stepsDone = metadata["steps_done"].flatMap(Int.init) ?? stepsDone
    }

    func stop() {}

    func model() throws -> TrialModel? {
        TrialModel(
            artifact: try SafeTensors.encode(agent.checkpoint(), metadata: ["format": "pt", "algorithm": agent.name]),
            summary: "\(agent.name) agent on \(environmentName) after \(stepsDone) steps",
            dataSHA256: ContentDigest.sha256(of: Array(environmentName.utf8)))
    }
}

/// A configuration with defaults for every setting.
protocol DefaultConstructible { init() }
extension PPO.Config: DefaultConstructible {}
extension Rainbow.Config: DefaultConstructible {}
extension SAC.Config: DefaultConstructible {}
extension TD3.Config: DefaultConstructible {}

/// The hybrid model's training loop as a trainable: each report is one epoch (its validation
/// loss, accuracy, macro-F1 and information coefficient); early stopping or the last epoch ends
/// the trial. A checkpoint is the loop's checkpoint folder (weights, optimiser, step, RNG).
actor HybridTrainable: Trainable {
    var loop: TrainingLoop
    let folder: String

    /// Datasets built in this worker, by their data settings: trials that share them share one.
    static let datasets = DatasetCache()

    init(_ context: TrialContext, base: [String: Any]) async throws {
        var config = try TuneTrainables.overlay(TrainingConfig(), base: base, trial: context.config, what: "the hybrid trainable")
        config.checkpointEvery = 0
        let dataset = try await Self.datasets.dataset(for: config.data)
        loop = try TrainingLoop(config: config, dataset: dataset)
        folder = context.checkpointDirectory
    }

    func step() async throws -> TrialReport {
        let epochs = loop.state.history.count
        // To the end of the epoch (or the run): its validation pass closes it.
        try loop.run(stopAfter: loop.state.step + loop.stepsPerEpoch - loop.state.batchInEpoch)
        guard let record = loop.state.history.last, loop.state.history.count > epochs else {
            throw TuneError("the hybrid trainable's epoch ended without a validation pass")
        }
        return TrialReport(
            metrics: [
                "val_loss": record.validation.loss, "best_val_loss": loop.state.bestValidationLoss ?? record.validation.loss,
                "val_accuracy": record.validation.accuracy,
                "val_macro_f1": record.validation.macroF1, "val_ic": record.validation.informationCoefficient,
                "train_loss": record.trainLoss, "epoch": Double(record.epoch),
            ], done: loop.state.finished)
    }

    func save() throws -> [UInt8] {
        let checkpoints = try CheckpointFolder(path: folder + "/hybrid", keep: 1)
        return try WorkingDirectoryArchive.pack(directory: try checkpoints.save(loop)).bytes
    }

    /// The same settings take the run up exactly (weights, optimiser, step, RNG); other
    /// settings (PBT's explored ones) start a run of their own from the checkpoint's weights.
    func restore(_ checkpoint: [UInt8]) throws {
        let path = folder + "/restored"
        try? FileManager.default.removeItem(atPath: path)
        try WorkingDirectoryArchive.unpack(checkpoint, into: path)
        let resumed = try TrainingLoop(resumingFrom: path, dataset: loop.dataset)
        if resumed.config == loop.config {
            loop = resumed
        } else {
            let weights = try SafeTensors.read(path: path + "/model.safetensors").tensors
            loop = try TrainingLoop(config: loop.config, dataset: loop.dataset, initialWeights: weights)
        }
    }

    func stop() {}

    /// The best epoch's weights (the loop keeps them), as `trading model train` registers them.
    func model() throws -> TrialModel? {
        let named = loop.namedParameters(loop.bestParameters ?? loop.parameters)
        return TrialModel(
            artifact: try SafeTensors.encode(named, metadata: ["format": "pt", "model": "shoal-hybrid"]),
            summary: "hybrid model after \(loop.state.history.count) epochs (best validation loss "
                + String(format: "%.4f", loop.state.bestValidationLoss ?? .nan) + ")",
            dataSHA256: try loop.dataset.sha256())
    }
}

/// Datasets by their settings, built once per worker process.
actor DatasetCache {
    /// The last one built: trials of one search share their data settings.
    private var built: (config: DataConfig, dataset: HybridDataset)?

    func dataset(for config: DataConfig) throws -> HybridDataset {
        if let built, built.config == config { return built.dataset }
        let dataset = try HybridDataset.build(try config.load(), config: config)
        built = (config, dataset)
        return dataset
    }
}
