import Foundation
import Shoal

/// A finished training run's entry in the model registry: the weights as a safetensors artifact,
/// a model card (the configuration, the test and validation metrics, the learning curve) and the
/// lineage (job, the data's SHA-256, the job binary's SHA-256, the parent version when the run
/// started from a registered one).
public struct TrainedModelRecord: Sendable {
    public var name: String
    /// The safetensors file of the weights.
    public var weightsPath: String
    public var config: TrainingConfig
    public var report: TestReport
    public var history: [EpochRecord]
    public var dataSHA256: String
    public var jobID: String
    public var parentVersion: Int?
    public var workers: Int

    public init(
        name: String, weightsPath: String, config: TrainingConfig, report: TestReport, history: [EpochRecord],
        dataSHA256: String, jobID: String, parentVersion: Int?, workers: Int
    ) {
        self.name = name
        self.weightsPath = weightsPath
        self.config = config
        self.report = report
        self.history = history
        self.dataSHA256 = dataSHA256
        self.jobID = jobID
        self.parentVersion = parentVersion
        self.workers = workers
    }

    /// Registers the version and, with `alias`, points the alias at it.
    /// - Throws: the registry's errors (no registry, a refused artifact, …).
    public func register(in registry: ModelRegistry, alias: String? = nil) throws -> ModelVersion {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let configJSON = String(decoding: try encoder.encode(config), as: UTF8.self)
        let test = report.metrics
        var metrics: [String: Double] = [
            "test_accuracy": test.accuracy, "test_macro_f1": test.macroF1, "test_loss": test.loss, "test_mse": test.mse,
            "test_ic": test.informationCoefficient, "baseline_accuracy": report.baselineAccuracy,
            "binomial_p_value": report.pValue,
        ]
        if let best = history.first(where: { $0.epoch == report.epoch }) {
            metrics["validation_loss"] = best.validation.loss
            metrics["validation_accuracy"] = best.validation.accuracy
        }
        var points: [(key: String, step: Int64, value: Double)] = []
        for record in history {
            points.append(("train_loss", Int64(record.step), record.trainLoss))
            points.append(("validation_loss", Int64(record.step), record.validation.loss))
            points.append(("validation_accuracy", Int64(record.step), record.validation.accuracy))
        }
        let binary = (try? ContentDigest.sha256(ofFile: "/proc/self/exe")) ?? ""
        let version = try registry.register(
            model: name, artifactAt: weightsPath, format: "safetensors",
            description: "Hybrid CNN+LSTM trained by trading model train (\(workers) worker(s))",
            parameters: [
                "batch_size": String(config.batchSize), "learning_rate": String(config.learningRate),
                "epochs": String(config.epochs), "seed": String(config.seed), "workers": String(workers),
                "best_epoch": String(report.epoch),
            ],
            metrics: metrics.filter { $0.value.isFinite }, history: points.filter { $0.value.isFinite },
            tags: ["framework": "shoal", "task": "sell-hold-buy"],
            lineage: ModelVersion.Lineage(
                jobID: jobID, dataSHA256: dataSHA256, codeSHA256: binary, parentVersion: parentVersion),
            configJSON: configJSON)
        if let alias { try registry.moveAlias(name, alias, to: version.version, reason: "trained by trading model train") }
        return version
    }
}
