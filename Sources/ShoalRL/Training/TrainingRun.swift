import Foundation

/// Trains an agent for a number of steps, evaluating it every `evaluationInterval` steps and
/// reporting progress (steps, episodes, mean return, steps per second, time left) as it goes.
public struct TrainingRun<Base: Environment> {
    public var totalSteps: Int
    public var evaluationInterval: Int
    public var evaluationEpisodes: Int
    /// Stop once the evaluation mean reaches this (nil: train all the steps).
    public var stopAt: Double?
    public var environmentName: String
    public var seed: UInt64
    /// Builds the evaluation environment.
    public var evaluationEnvironment: Base

    public init(
        totalSteps: Int, evaluationInterval: Int, evaluationEpisodes: Int = 10, stopAt: Double? = nil, environmentName: String,
        seed: UInt64, evaluationEnvironment: Base
    ) {
        self.totalSteps = totalSteps
        self.evaluationInterval = evaluationInterval
        self.evaluationEpisodes = evaluationEpisodes
        self.stopAt = stopAt
        self.environmentName = environmentName
        self.seed = seed
        self.evaluationEnvironment = evaluationEnvironment
    }

    /// Runs the training; `progress` gets one line per evaluation.
    public func run(_ agent: any Agent, progress: (String) -> Void = { _ in }) -> LearningCurve {
        var curve = LearningCurve(algorithm: agent.name, environment: environmentName, seed: seed)
        var trainingTime = Duration.zero
        let clock = ContinuousClock()
        let started = clock.now
        while agent.stepsDone < totalSteps {
            let before = clock.now
            agent.train(steps: min(evaluationInterval, totalSteps - agent.stepsDone))
            trainingTime += clock.now - before
            let evaluation = Evaluation.run(
                agent, environment: evaluationEnvironment, episodes: evaluationEpisodes, seed: 1_000_000 &+ seed)
            let recent = agent.episodeReturns.suffix(100)
            let trainingSeconds = Double(trainingTime.components.seconds) + Double(trainingTime.components.attoseconds) * 1e-18
            let point = LearningCurve.Point(
                steps: agent.stepsDone, episodes: agent.episodeReturns.count, evaluationMean: evaluation.mean,
                evaluationDeviation: evaluation.deviation,
                trainingMean: recent.isEmpty ? .nan : recent.reduce(0, +) / Double(recent.count),
                stepsPerSecond: Double(agent.stepsDone) / max(trainingSeconds, 1e-9),
                seconds: Double((clock.now - started).components.seconds))
            curve.points.append(point)
            let remaining = Double(totalSteps - agent.stepsDone) / max(point.stepsPerSecond, 1e-9)
            progress(
                "\(agent.name) \(environmentName) seed \(seed): steps \(point.steps)/\(totalSteps)  episodes \(point.episodes)  "
                    + String(
                        format: "mean return %.1f (last 100)  eval %.1f ± %.1f  %.0f steps/s  ETA %.0f s", point.trainingMean,
                        point.evaluationMean, point.evaluationDeviation, point.stepsPerSecond, remaining))
            if let stopAt, evaluation.mean >= stopAt { break }
        }
        return curve
    }
}
