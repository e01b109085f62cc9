import Foundation
import ShoalPlot

/// A training run's progress, one point per evaluation: what was learnt by how many steps,
/// and how fast.
public struct LearningCurve: Sendable, Codable {
    public struct Point: Sendable, Codable {
        public var steps: Int
        public var episodes: Int
        /// Mean return of the evaluation episodes (deterministic policy).
        public var evaluationMean: Double
        public var evaluationDeviation: Double
        /// Mean return of the last 100 training episodes (NaN before the first).
        public var trainingMean: Double
        /// Training steps per second so far (evaluation time left out).
        public var stepsPerSecond: Double
        /// Wall-clock seconds since the run began (evaluations included).
        public var seconds: Double
    }

    public var algorithm: String
    public var environment: String
    public var seed: UInt64
    public var points: [Point] = []

    public init(algorithm: String, environment: String, seed: UInt64) {
        self.algorithm = algorithm
        self.environment = environment
        self.seed = seed
    }

    /// The first step count at which the evaluation mean reached `threshold`.
    public func firstReaching(_ threshold: Double) -> Int? { points.first { $0.evaluationMean >= threshold }?.steps }

    public var csv: String {
        var text = "steps,episodes,evaluation_mean,evaluation_std,training_mean_100,steps_per_second,seconds\n"
        for point in points {
            text += "\(point.steps),\(point.episodes),\(point.evaluationMean),\(point.evaluationDeviation),"
            text += "\(point.trainingMean),\(point.stepsPerSecond),\(point.seconds)\n"
        }
        return text
    }

    public func writeCSV(to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(csv.utf8)) else {
            throw AgentError("cannot write the learning curve to \(path)")
        }
    }

    /// The curve as a line plot: evaluation and training means against steps.
    public func plot(threshold: Double? = nil) -> LinePlot {
        var plot = LinePlot(title: "\(algorithm) on \(environment), seed \(seed)", xLabel: "environment steps", yLabel: "return")
        plot.series.append(.init(name: "evaluation", points: points.map { (Double($0.steps), $0.evaluationMean) }))
        plot.series.append(
            .init(
                name: "training (last 100)",
                points: points.filter { $0.trainingMean.isFinite }.map { (Double($0.steps), $0.trainingMean) }))
        if let threshold { plot.references.append((threshold, "goal \(LinePlot.format(threshold))")) }
        return plot
    }
}
