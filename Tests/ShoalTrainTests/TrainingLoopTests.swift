import Foundation
import ShoalMarket
import ShoalTensor
import Testing

@testable import ShoalTrain

struct TrainingLoopTests {
    /// A model and data small enough to train in a debug build in seconds.
    static func tinyConfig(seed: UInt64 = 7) -> TrainingConfig {
        var config = TrainingConfig()
        config.model.convChannels = 2
        config.model.kernels = [3, 5]
        config.model.heads = 2
        config.model.lstmHidden = 2
        config.model.lstmLayers = 1
        config.model.fusionSize = 8
        config.model.dropout = 0.2
        config.data.synthetic.symbols = ["AAA", "BBB"]
        config.data.bars = 400
        config.data.steps = 8
        config.data.horizon = 3
        config.batchSize = 32
        config.epochs = 3
        config.warmupSteps = 4
        config.learningRate = 3e-3
        config.seed = seed
        config.evaluationBatch = 64
        return config
    }

    static func dataset(_ config: TrainingConfig) throws -> HybridDataset {
        try HybridDataset.build(try config.data.load(), config: config.data)
    }

    static func temporaryFolder() -> String {
        let path = NSTemporaryDirectory() + "shoal-train-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func resumingFromACheckpointGivesTheWeightsOfOneUninterruptedRun() throws {
        var config = Self.tinyConfig()
        let data = try Self.dataset(config)
        let perEpoch = try TrainingLoop(config: config, dataset: data).stepsPerEpoch
        // The stop comes after an epoch's end (and its validation pass), so the early-stopping state travels too.
        let stop = perEpoch + 3
        config.maxSteps = 2 * stop
        var whole = try TrainingLoop(config: config, dataset: data)
        try whole.run()
        #expect(whole.state.step == 2 * stop)

        let folder = Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var first = try TrainingLoop(config: config, dataset: data)
        try first.run(stopAfter: stop, checkpoints: try CheckpointFolder(path: folder))
        #expect(first.state.step == stop && !first.state.finished)
        #expect(first.parameters != whole.parameters)

        var resumed = try TrainingLoop(resumingFrom: folder)
        #expect(resumed.state.step == stop)
        try resumed.run()
        #expect(resumed.state.step == 2 * stop && resumed.state.finished)
        #expect(resumed.parameters == whole.parameters, "resumed weights differ from the uninterrupted run's")
        #expect(resumed.optimizer.moments == whole.optimizer.moments)
        #expect(resumed.bestParameters == whole.bestParameters)
        #expect(resumed.state.history.map(\.validation) == whole.state.history.map(\.validation))
        #expect(resumed.state.history.map(\.trainLoss) == whole.state.history.map(\.trainLoss))
    }

    @Test func trainingLowersTheTrainingLoss() throws {
        var config = Self.tinyConfig()
        config.model.dropout = 0
        config.epochs = 4
        config.learningRate = 1e-2
        config.patience = 0
        var loop = try TrainingLoop(config: config, dataset: try Self.dataset(config))
        let before = loop.evaluate(loop.dataset.train).loss
        var epochs: [EpochRecord] = []
        var steps = 0
        try loop.run(observer: { event in
            switch event {
            case .epoch(let record): epochs.append(record)
            case .step: steps += 1
            default: break
            }
        })
        let after = loop.evaluate(loop.dataset.train, weights: loop.parameters).loss
        #expect(after < before * 0.95, "training loss \(before) → \(after)")
        #expect(epochs.count == 4 && steps == loop.totalSteps)
        #expect(epochs.map(\.epoch) == [1, 2, 3, 4] && epochs.allSatisfy(\.complete))
        // The schedule warms up, then decays towards its minimum.
        #expect(loop.schedule.rate(at: 0) < loop.schedule.rate(at: 4))
        #expect(epochs.last!.learningRate < Double(config.learningRate) / 2)
    }

    @Test func aCheckpointOfOtherDataIsRefused() throws {
        var config = Self.tinyConfig()
        config.maxSteps = 3
        let folder = Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var loop = try TrainingLoop(config: config, dataset: try Self.dataset(config))
        try loop.run(checkpoints: try CheckpointFolder(path: folder))
        var other = config.data
        other.synthetic.seed += 1
        let otherData = try HybridDataset.build(try other.load(), config: config.data)
        #expect(throws: TrainingError.self) { try TrainingLoop(resumingFrom: folder, dataset: otherData) }
        // A checkpoint folder whose newest checkpoint lost its weights names what is missing.
        let latest = try #require(try CheckpointFolder(path: folder).latest())
        try FileManager.default.removeItem(atPath: "\(latest)/model.safetensors")
        #expect(throws: TrainingError.self) { try TrainingLoop(resumingFrom: folder) }
        #expect(throws: TrainingError.self) { try TrainingLoop(resumingFrom: folder + "/missing") }
    }

    @Test func checkpointsAreNamedOnlyWhenWholeAndOldOnesArePruned() throws {
        var config = Self.tinyConfig()
        config.maxSteps = 8
        config.checkpointEvery = 2
        let folder = Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var loop = try TrainingLoop(config: config, dataset: try Self.dataset(config))
        var written: [String] = []
        try loop.run(
            checkpoints: try CheckpointFolder(path: folder, keep: 2),
            observer: { event in
                if case .checkpoint(let path) = event { written.append(path) }
            })
        #expect(written.count == 4)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(names == ["checkpoint-00000006", "checkpoint-00000008", "latest"])
        #expect(try CheckpointFolder(path: folder).latest() == "\(folder)/checkpoint-00000008")
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(folder)/checkpoint-00000008").sorted()
        #expect(files.contains("model.safetensors") && files.contains("optimizer.safetensors") && files.contains("state.json"))
        // The weights load into a model by their PyTorch names.
        let weights = try SafeTensors.read(path: "\(folder)/checkpoint-00000008/model.safetensors").tensors
        _ = try HybridModel(config: loop.config.model, parameters: weights)
    }

    /// A diverged loss or a constant prediction leaves NaN in the learning curve: checkpoints
    /// still save and resume; a checkpoint whose optimiser moments or counters do not fit the
    /// run is refused with its reason, never read out of bounds.
    @Test func checkpointsSurviveNaNAndRefuseStatesThatDoNotFit() throws {
        var config = Self.tinyConfig()
        config.maxSteps = 3
        let folder = Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var loop = try TrainingLoop(config: config, dataset: try Self.dataset(config))
        try loop.run(stopAfter: 2)
        let nan = EvaluationMetrics(loss: .nan, accuracy: 0.5, macroF1: .nan, mse: .infinity, informationCoefficient: .nan, count: 1)
        loop.state.history.append(
            EpochRecord(epoch: 1, step: 2, trainLoss: .nan, validation: nan, learningRate: 1e-3, seconds: 1, samplesPerSecond: 1, complete: false))
        let saved = try CheckpointFolder(path: folder).save(loop)
        let resumed = try TrainingLoop(resumingFrom: saved)
        #expect(resumed.state.history.last?.validation.loss.isNaN == true)
        #expect(resumed.state.history.last?.validation.mse == .infinity)

        // Moments of the wrong shape (but agreeing with each other).
        let moments = try SafeTensors.read(path: saved + "/optimizer.safetensors")
        var shrunk = moments.tensors
        let name = try #require(loop.parameterNames.first { (loop.namedParameters()[$0]?.count ?? 0) > 1 })
        shrunk["\(name).exp_avg"] = Tensor(shape: [1])
        shrunk["\(name).exp_avg_sq"] = Tensor(shape: [1])
        try SafeTensors.write(shrunk, metadata: moments.metadata, to: saved + "/optimizer.safetensors")
        #expect(throws: TrainingError.self) { try TrainingLoop(resumingFrom: saved) }
        try SafeTensors.write(moments.tensors, metadata: moments.metadata, to: saved + "/optimizer.safetensors")
        _ = try TrainingLoop(resumingFrom: saved)

        // A place in the epoch past its end.
        let statePath = saved + "/state.json"
        let text = try String(contentsOfFile: statePath, encoding: .utf8)
        try text.replacingOccurrences(of: "\"batchInEpoch\" : 2", with: "\"batchInEpoch\" : 99999").write(
            toFile: statePath, atomically: true, encoding: .utf8)
        #expect(text.contains("\"batchInEpoch\" : 2"))
        #expect(throws: TrainingError.self) { try TrainingLoop(resumingFrom: saved) }
    }

    @Test func badConfigurationsAreNamed() throws {
        var config = Self.tinyConfig()
        config.batchSize = 0
        #expect(throws: TrainingError.self) { try config.validate() }
        config = Self.tinyConfig()
        config.data.trainFraction = 0.9
        config.data.validationFraction = 0.2
        #expect(throws: TrainingError.self) { try config.validate() }
        config = Self.tinyConfig()
        config.batchSize = 100_000
        let data = try Self.dataset(config)
        #expect(throws: TrainingError.self) { try TrainingLoop(config: config, dataset: data) }
        config = Self.tinyConfig()
        config.model.heads = 0
        #expect(throws: TrainingError.self) { try config.validate() }
        config = Self.tinyConfig()
        config.model.classes = 4
        #expect(throws: TrainingError.self) { try config.validate() }
        let partial = Data(#"{"epochs": 2, "data": {"bars": 500}}"#.utf8)
        let decoded = try JSONDecoder().decode(TrainingConfig.self, from: partial)
        #expect(decoded.epochs == 2 && decoded.data.bars == 500 && decoded.batchSize == 64)
    }
}
