/// One row of the learning curve: the state at the end of an epoch (or of the run, when it ends
/// inside one).
public struct EpochRecord: Codable, Sendable, Equatable {
    /// 1 for the first epoch.
    public var epoch: Int
    /// Optimiser steps taken so far.
    public var step: Int
    /// The mean training loss of the epoch's steps (dropout on).
    public var trainLoss: Double
    public var validation: EvaluationMetrics
    public var learningRate: Double
    /// Training time so far (evaluations left out).
    public var seconds: Double
    public var samplesPerSecond: Double
    /// False for an epoch that the run's step limit cut short.
    public var complete: Bool
}

/// Where a training run stands: everything besides the weights and the optimiser that a
/// checkpoint must hold to go on exactly.
///
/// The random state is the run's seed with these counters: the order of an epoch's samples is
/// drawn from (seed, epoch) and a step's dropout masks from (seed, step), so the counters fix
/// every random number still to come.
public struct TrainingState: Codable, Sendable, Equatable {
    /// Optimiser steps taken.
    public var step = 0
    /// The epoch under way, from 0.
    public var epoch = 0
    /// Steps taken in the epoch under way.
    public var batchInEpoch = 0
    public var trainLossSum = 0.0
    public var trainLossCount = 0
    public var history: [EpochRecord] = []
    public var bestValidationLoss: Double?
    /// The epoch (from 1) whose weights are the best so far; 0 before the first evaluation.
    public var bestEpoch = 0
    public var epochsWithoutImprovement = 0
    public var stoppedEarly = false
    public var finished = false
    public var trainingSeconds = 0.0
    public var samplesSeen = 0

    public init() {}
}

/// One optimiser step, as a progress line shows it.
public struct StepReport: Codable, Sendable {
    public var step: Int
    public var totalSteps: Int
    /// From 1.
    public var epoch: Int
    public var epochs: Int
    public var loss: Double
    /// Before clipping.
    public var gradientNorm: Double
    public var learningRate: Double
    public var samplesPerSecond: Double
    /// Seconds left at the run's rate so far, evaluations left out.
    public var secondsLeft: Double
}

/// What a training run tells whoever watches it.
public enum TrainingEvent: Sendable {
    case step(StepReport)
    case epoch(EpochRecord)
    case checkpoint(path: String)
    case stoppedEarly(epoch: Int, bestEpoch: Int)
}
