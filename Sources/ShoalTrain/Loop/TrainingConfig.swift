import Foundation
import ShoalTensor

/// Everything that decides a training run. Missing keys in a JSON file take their defaults.
public struct TrainingConfig: Codable, Sendable, Equatable {
    /// The model's architecture; `features` and `steps` are set from the data.
    public var model = HybridModel.Config()
    public var data = DataConfig()
    /// Samples per optimiser step (across all workers).
    public var batchSize = 64
    public var epochs = 10
    /// Stop after this many optimiser steps, even within an epoch (0: no limit).
    public var maxSteps = 0
    /// The peak learning rate, reached after the warm-up.
    public var learningRate: Float = 1e-3
    /// Where the cosine schedule ends.
    public var minimumLearningRate: Float = 1e-5
    /// AdamW's decoupled weight decay.
    public var weightDecay: Float = 0.01
    /// Linear warm-up steps before the cosine decay.
    public var warmupSteps = 100
    /// Gradients are scaled down to this global L2 norm (0: no clipping).
    public var clipNorm: Float = 1
    /// Stop after this many epochs without a better validation loss (0: never stop early).
    public var patience = 3
    /// Write a checkpoint every this many steps (0: only at the end), when a folder is given.
    public var checkpointEvery = 0
    /// Checkpoints kept in the folder (the newest).
    public var keepCheckpoints = 2
    /// Seeds the initial weights, the order of the samples and the dropout masks.
    public var seed: UInt64 = 0
    /// Samples per forward pass when evaluating.
    public var evaluationBatch = 256

    public init() {}

    public init(from decoder: any Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = TrainingConfig()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try values.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        model = try value(.model, defaults.model)
        data = try value(.data, defaults.data)
        batchSize = try value(.batchSize, defaults.batchSize)
        epochs = try value(.epochs, defaults.epochs)
        maxSteps = try value(.maxSteps, defaults.maxSteps)
        learningRate = try value(.learningRate, defaults.learningRate)
        minimumLearningRate = try value(.minimumLearningRate, defaults.minimumLearningRate)
        weightDecay = try value(.weightDecay, defaults.weightDecay)
        warmupSteps = try value(.warmupSteps, defaults.warmupSteps)
        clipNorm = try value(.clipNorm, defaults.clipNorm)
        patience = try value(.patience, defaults.patience)
        checkpointEvery = try value(.checkpointEvery, defaults.checkpointEvery)
        keepCheckpoints = try value(.keepCheckpoints, defaults.keepCheckpoints)
        seed = try value(.seed, defaults.seed)
        evaluationBatch = try value(.evaluationBatch, defaults.evaluationBatch)
    }

    /// Reads a configuration from a JSON file.
    /// - Throws: `TrainingError` naming the file and what is wrong with it.
    public static func load(path: String) throws -> TrainingConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError("cannot read the training configuration \(path)")
        }
        do {
            return try JSONDecoder().decode(TrainingConfig.self, from: data)
        } catch {
            throw TrainingError("\(path) is not a training configuration: \(error)")
        }
    }

    /// - Throws: `TrainingError` naming the first bad value.
    public func validate() throws {
        guard batchSize >= 1 else { throw TrainingError("batchSize must be at least 1, not \(batchSize)") }
        guard epochs >= 1 else { throw TrainingError("epochs must be at least 1, not \(epochs)") }
        guard maxSteps >= 0 else { throw TrainingError("maxSteps must be 0 (no limit) or more, not \(maxSteps)") }
        guard learningRate > 0, learningRate.isFinite, minimumLearningRate >= 0, minimumLearningRate <= learningRate else {
            throw TrainingError(
                "learningRate (\(learningRate)) must be above 0 and minimumLearningRate (\(minimumLearningRate)) within 0…learningRate")
        }
        guard weightDecay >= 0, warmupSteps >= 0, clipNorm >= 0, patience >= 0, checkpointEvery >= 0 else {
            throw TrainingError("weightDecay, warmupSteps, clipNorm, patience and checkpointEvery must not be negative")
        }
        guard keepCheckpoints >= 1, evaluationBatch >= 1 else {
            throw TrainingError("keepCheckpoints and evaluationBatch must be at least 1")
        }
        guard (0...1).contains(model.dropout) else { throw TrainingError("model.dropout must be within 0…1") }
        guard model.classes == 3 else { throw TrainingError("model.classes must be 3 (Sell, Hold, Buy), not \(model.classes)") }
        guard model.heads >= 1, model.convChannels >= 1, model.lstmHidden >= 1, model.lstmLayers >= 1, model.fusionSize >= 1
        else {
            throw TrainingError("model.heads, convChannels, lstmHidden, lstmLayers and fusionSize must be at least 1")
        }
        do {
            var checked = model
            checked.features = max(1, checked.features)
            try checked.validate()
        } catch {
            throw TrainingError("model: \(error)")
        }
        try data.validate()
    }
}
