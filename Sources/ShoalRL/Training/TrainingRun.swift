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
        var recorder = Recorder(run: self, agent: agent)
        while agent.stepsDone < totalSteps {
            let before = ContinuousClock.now
            agent.train(steps: min(evaluationInterval, totalSteps - agent.stepsDone))
            if recorder.evaluate(trainedFor: ContinuousClock.now - before, progress: progress) { break }
        }
        return recorder.curve
    }

    /// Runs the training with its steps taken by `train` (which trains `agent` for about the
    /// steps it is given: rollout workers on a cluster, say); `progress` gets one line per
    /// evaluation, ending with `details()`.
    /// - Throws: what `train` throws.
    public func run(
        _ agent: any Agent, progress: (String) -> Void = { _ in }, details: () -> String = { "" },
        train: (Int) async throws -> Void
    ) async throws -> LearningCurve {
        var recorder = Recorder(run: self, agent: agent)
        while agent.stepsDone < totalSteps {
            let before = ContinuousClock.now
            try await train(min(evaluationInterval, totalSteps - agent.stepsDone))
            let details = details()
            if recorder.evaluate(trainedFor: ContinuousClock.now - before, progress: { progress($0 + details) }) { break }
        }
        return recorder.curve
    }

    /// The curve so far: evaluates after each stretch of training and says whether to stop.
    private struct Recorder {
        let run: TrainingRun
        let agent: any Agent
        var curve: LearningCurve
        var trainingTime = Duration.zero
        let started = ContinuousClock.now

        init(run: TrainingRun, agent: any Agent) {
            self.run = run
            self.agent = agent
            curve = LearningCurve(algorithm: agent.name, environment: run.environmentName, seed: run.seed)
        }

        static func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        }

        /// Records a point after `duration` more of training; true once the goal is reached.
        mutating func evaluate(trainedFor duration: Duration, progress: (String) -> Void) -> Bool {
            trainingTime += duration
            let evaluation = Evaluation.run(
                agent, environment: run.evaluationEnvironment, episodes: run.evaluationEpisodes, seed: 1_000_000 &+ run.seed)
            let recent = agent.episodeReturns.suffix(100)
            let trainingSeconds = Self.seconds(trainingTime)
            let point = LearningCurve.Point(
                steps: agent.stepsDone, episodes: agent.episodeReturns.count, evaluationMean: evaluation.mean,
                evaluationDeviation: evaluation.deviation,
                trainingMean: recent.isEmpty ? .nan : recent.reduce(0, +) / Double(recent.count),
                stepsPerSecond: Double(agent.stepsDone) / max(trainingSeconds, 1e-9),
                seconds: Self.seconds(ContinuousClock.now - started))
            curve.points.append(point)
            let remaining = Double(run.totalSteps - agent.stepsDone) / max(point.stepsPerSecond, 1e-9)
            progress(
                "\(agent.name) \(run.environmentName) seed \(run.seed): steps \(point.steps)/\(run.totalSteps)  episodes \(point.episodes)  "
                    + String(
                        format: "mean return %.1f (last 100)  eval %.1f ± %.1f  %.0f steps/s  ETA %.0f s", point.trainingMean,
                        point.evaluationMean, point.evaluationDeviation, point.stepsPerSecond, remaining))
            if let stopAt = run.stopAt, evaluation.mean >= stopAt { return true }
            return false
        }
    }
}
