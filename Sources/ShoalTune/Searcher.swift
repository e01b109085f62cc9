import ShoalMarket

/// Chooses the configurations of a search's trials and learns from their values. Values
/// reach it as losses: lower is better whatever the experiment's mode.
public protocol Searcher: Sendable {
    /// The configuration of trial `trial` (numbered from 0 in the order asked), or nil when the
    /// search has given all it has.
    mutating func suggest(_ trial: Int) -> TrialConfig?
    /// Trial `trial` ended: its last value as a loss (nil when it failed without one).
    mutating func observe(_ trial: Int, config: TrialConfig, loss: Double?)
}

/// Random search: every parameter drawn from its domain (a grid's values as a choice),
/// `samples` trials.
public struct RandomSearch: Searcher {
    let space: SearchSpace
    let samples: Int
    var generator: SeededGenerator

    public init(space: SearchSpace, samples: Int, seed: UInt64) {
        self.space = space
        self.samples = samples
        generator = SeededGenerator(seed: seed)
    }

    public mutating func suggest(_ trial: Int) -> TrialConfig? {
        trial < samples ? space.sample(using: &generator) : nil
    }

    public mutating func observe(_ trial: Int, config: TrialConfig, loss: Double?) {}
}

/// Grid search as Ray Tune runs it: the product of the grid parameters, the whole grid
/// `samples` times, the other parameters drawn for each trial.
public struct GridSearch: Searcher {
    let space: SearchSpace
    let samples: Int
    let points: [TrialConfig]
    var generator: SeededGenerator

    /// - Throws: `TuneError` when the space has no grid parameter.
    public init(space: SearchSpace, samples: Int, seed: UInt64) throws {
        guard space.parameters.contains(where: { if case .grid = $0.domain { true } else { false } }) else {
            throw TuneError("grid search needs at least one {\"type\": \"grid\"} parameter")
        }
        self.space = space
        self.samples = samples
        points = space.grid
        generator = SeededGenerator(seed: seed)
    }

    /// Trials in all: the grid's size times the samples.
    public var count: Int { points.count * samples }

    public mutating func suggest(_ trial: Int) -> TrialConfig? {
        guard trial < count else { return nil }
        var config = space.sample(using: &generator)
        for (name, value) in points[trial % points.count].values { config[name] = value }
        return config
    }

    public mutating func observe(_ trial: Int, config: TrialConfig, loss: Double?) {}
}
