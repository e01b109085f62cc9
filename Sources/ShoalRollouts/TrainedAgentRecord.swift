import Foundation
import Shoal
import ShoalRL

/// A trained agent's entry in the model registry: its checkpoint (safetensors) as the artifact,
/// a model card (algorithm, environment, configuration, the learning curve's figures and any
/// out-of-sample results) and the lineage (job, the data's SHA-256, the job binary's SHA-256).
public struct TrainedAgentRecord: Sendable {
    public var name: String
    /// The agent's checkpoint, a safetensors file.
    public var checkpointPath: String
    public var algorithm: String
    public var environment: String
    /// The algorithm's configuration as JSON.
    public var configJSON: String
    public var curve: LearningCurve
    /// More figures for the card (an out-of-sample Sharpe ratio, say), by name.
    public var metrics: [String: Double]
    /// The SHA-256 of what the agent trained on (the environment's description, the market's prices).
    public var dataSHA256: String
    public var jobID: String
    /// Rollout workers it trained with (0: in one process).
    public var runners: Int

    public init(
        name: String, checkpointPath: String, algorithm: String, environment: String, configJSON: String, curve: LearningCurve,
        metrics: [String: Double] = [:], dataSHA256: String, jobID: String, runners: Int
    ) {
        self.name = name
        self.checkpointPath = checkpointPath
        self.algorithm = algorithm
        self.environment = environment
        self.configJSON = configJSON
        self.curve = curve
        self.metrics = metrics
        self.dataSHA256 = dataSHA256
        self.jobID = jobID
        self.runners = runners
    }

    /// Registers the version and, with `alias`, points the alias at it.
    /// - Throws: the registry's errors (no registry, a refused artifact, …).
    public func register(in registry: ModelRegistry, alias: String? = nil) throws -> ModelVersion {
        var figures = metrics
        if let last = curve.points.last {
            figures["evaluation_mean"] = last.evaluationMean
            figures["evaluation_std"] = last.evaluationDeviation
            figures["training_mean_100"] = last.trainingMean
            figures["steps"] = Double(last.steps)
            figures["episodes"] = Double(last.episodes)
            figures["steps_per_second"] = last.stepsPerSecond
        }
        if let best = curve.points.map(\.evaluationMean).max() { figures["best_evaluation_mean"] = best }
        var history: [(key: String, step: Int64, value: Double)] = []
        for point in curve.points {
            history.append(("evaluation_mean", Int64(point.steps), point.evaluationMean))
            history.append(("training_mean_100", Int64(point.steps), point.trainingMean))
        }
        let binary = (try? ContentDigest.sha256(ofFile: "/proc/self/exe")) ?? ""
        let version = try registry.register(
            model: name, artifactAt: checkpointPath, format: "safetensors",
            description: "\(algorithm) agent on \(environment) trained by trading rl train"
                + (runners > 0 ? " with \(runners) rollout worker(s)" : ""),
            parameters: [
                "algorithm": algorithm, "environment": environment, "seed": String(curve.seed), "runners": String(runners),
            ],
            metrics: figures.filter { $0.value.isFinite }, history: history.filter { $0.value.isFinite },
            tags: ["framework": "shoal", "task": "reinforcement-learning", "algorithm": algorithm],
            lineage: ModelVersion.Lineage(jobID: jobID, dataSHA256: dataSHA256, codeSHA256: binary), configJSON: configJSON)
        if let alias { try registry.moveAlias(name, alias, to: version.version, reason: "trained by trading rl train") }
        return version
    }
}
