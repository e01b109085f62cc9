import Foundation
import ShoalMarket

/// What a scheduler tells a running trial after a report.
public enum SchedulerDecision: Sendable, Equatable {
    case proceed
    /// End the trial now (pruned).
    case stop
    /// The trial has had its budget: end it as finished.
    case finish
    /// PBT: carry on from trial `from`'s checkpoint with `config` (its configuration, perturbed).
    case exploit(from: Int, config: TrialConfig)
}

/// Decides, report by report, which trials go on. Driven by the trials' reports alone (steps
/// and values, no clock), so every rule can be tested as a value. Scores reach it with higher
/// better whatever the experiment's mode.
public protocol TrialScheduler: Sendable {
    /// Trial `trial` reported `score` at `step` (its training iteration, from 1).
    mutating func report(_ trial: Int, step: Int, score: Double, config: TrialConfig) -> SchedulerDecision
    /// Trial `trial` ended (finished, pruned or failed).
    mutating func complete(_ trial: Int)
}

/// Runs every trial to its end.
public struct FIFOScheduler: TrialScheduler {
    public init() {}
    public mutating func report(_ trial: Int, step: Int, score: Double, config: TrialConfig) -> SchedulerDecision { .proceed }
    public mutating func complete(_ trial: Int) {}
}

/// Asynchronous successive halving (Li et al. 2020; Ray Tune's `ASHAScheduler`): rungs at
/// `grace · rf^k` steps below `maxSteps`; a trial reaching a rung goes on only if its score is
/// at least the rung's (1 − 1/rf) quantile of the scores recorded there so far; every trial
/// stops at `maxSteps`. With several brackets it is asynchronous HyperBand: trial i falls in
/// bracket i mod brackets, bracket b's first rung at `grace · rf^b`.
public struct ASHAScheduler: TrialScheduler {
    public let maxSteps: Int
    public let grace: Int
    public let reductionFactor: Double
    /// Each bracket's rungs, deepest first: milestone and the scores recorded there.
    var brackets: [[(milestone: Int, scores: [Double])]]

    /// - Throws: `TuneError` for a bracket with no rung below `maxSteps`, or bad numbers.
    public init(maxSteps: Int = 100, grace: Int = 1, reductionFactor: Double = 4, brackets: Int = 1) throws {
        guard maxSteps >= 1, grace >= 1, reductionFactor > 1, brackets >= 1 else {
            throw TuneError("ASHA needs max steps ≥ 1, grace ≥ 1, a reduction factor above 1 and at least one bracket")
        }
        self.maxSteps = maxSteps
        self.grace = grace
        self.reductionFactor = reductionFactor
        self.brackets = (0..<brackets).map { bracket in
            var milestones: [Int] = []
            var milestone = Double(grace) * Foundation.pow(reductionFactor, Double(bracket))
            while Int(milestone) < maxSteps {
                milestones.append(Int(milestone))
                milestone *= reductionFactor
            }
            return milestones.reversed().map { ($0, []) }
        }
        guard self.brackets.allSatisfy({ !$0.isEmpty }) else {
            throw TuneError(
                "ASHA: \(brackets) brackets of grace \(grace) and factor \(reductionFactor) leave one with no rung below \(maxSteps) steps"
            )
        }
    }

    /// Asynchronous HyperBand: as many brackets as rungs fit in the first one.
    public static func hyperBand(maxSteps: Int = 100, grace: Int = 1, reductionFactor: Double = 4) throws -> ASHAScheduler {
        let rungs = try ASHAScheduler(maxSteps: maxSteps, grace: grace, reductionFactor: reductionFactor).brackets[0].count
        return try ASHAScheduler(maxSteps: maxSteps, grace: grace, reductionFactor: reductionFactor, brackets: rungs)
    }

    public mutating func report(_ trial: Int, step: Int, score: Double, config: TrialConfig) -> SchedulerDecision {
        if step >= maxSteps { return .finish }
        let bracket = trial % brackets.count
        guard let rung = brackets[bracket].firstIndex(where: { $0.milestone == step }) else { return .proceed }
        let recorded = brackets[bracket][rung].scores
        brackets[bracket][rung].scores.append(score)
        guard !recorded.isEmpty else { return .proceed }
        let cutoff = Self.quantile(recorded + [score], 1 - 1 / reductionFactor)
        return score < cutoff ? .stop : .proceed
    }

    public mutating func complete(_ trial: Int) {}

    /// The q-quantile with linear interpolation (NumPy's default).
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = Swift.min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }
}

/// The median stopping rule (Golovin et al. 2017; Ray Tune's `MedianStoppingRule`, counted
/// in steps): past `grace` steps, a trial whose best score so far is below the median of the
/// other trials' running means at the same step stops, once `minimumTrials` others have
/// reached it.
public struct MedianStoppingScheduler: TrialScheduler {
    public let grace: Int
    public let minimumTrials: Int
    /// Each trial's scores, step by step.
    var curves: [Int: [Double]] = [:]

    public init(grace: Int = 1, minimumTrials: Int = 3) {
        self.grace = grace
        self.minimumTrials = minimumTrials
    }

    public mutating func report(_ trial: Int, step: Int, score: Double, config: TrialConfig) -> SchedulerDecision {
        curves[trial, default: []].append(score)
        guard step > grace, let mine = curves[trial] else { return .proceed }
        let others = curves.filter { $0.key != trial && $0.value.count >= step }.map { curve in
            curve.value.prefix(step).reduce(0, +) / Double(step)
        }
        guard others.count >= minimumTrials else { return .proceed }
        return mine.max()! < ASHAScheduler.quantile(others, 0.5) ? .stop : .proceed
    }

    public mutating func complete(_ trial: Int) {}
}

/// Population-based training (Jaderberg et al. 2017; Ray Tune's `PopulationBasedTraining`):
/// every `interval` steps a trial in the bottom quantile of the latest scores takes a random
/// top-quantile trial's checkpoint and configuration (exploit), each numeric parameter then
/// multiplied by 0.8 or 1.2 or, with `resampleProbability`, drawn anew, and each choice moved
/// to a neighbour or drawn anew (explore).
public struct PBTScheduler: TrialScheduler {
    public let interval: Int
    public let quantile: Double
    public let resampleProbability: Double
    let space: SearchSpace
    var generator: SeededGenerator
    /// Each running trial's latest score at an interval, and its configuration.
    var latest: [Int: (score: Double, config: TrialConfig)] = [:]

    /// - Throws: `TuneError` for an interval below 1 or a quantile outside (0, 0.5].
    public init(
        space: SearchSpace, interval: Int, quantile: Double = 0.25, resampleProbability: Double = 0.25, seed: UInt64
    ) throws {
        guard interval >= 1, quantile > 0, quantile <= 0.5, (0...1).contains(resampleProbability) else {
            throw TuneError("PBT needs an interval ≥ 1, a quantile in (0, 0.5] and a resample probability in [0, 1]")
        }
        self.space = space
        self.interval = interval
        self.quantile = quantile
        self.resampleProbability = resampleProbability
        generator = SeededGenerator(seed: seed &+ 0x5042_5400)
    }

    public mutating func report(_ trial: Int, step: Int, score: Double, config: TrialConfig) -> SchedulerDecision {
        guard step % interval == 0 else { return .proceed }
        latest[trial] = (score, config)
        guard latest.count >= 2 else { return .proceed }
        let ranked = latest.keys.sorted { (latest[$0]!.score, $0) < (latest[$1]!.score, $1) }
        let cut = Swift.max(1, Int((Double(ranked.count) * quantile).rounded(.down)))
        guard ranked.prefix(cut).contains(trial) else { return .proceed }
        let top = Array(ranked.suffix(cut))
        let donor = top[Int(generator.next() % UInt64(top.count))]
        guard donor != trial, let source = latest[donor] else { return .proceed }
        let explored = explore(source.config)
        latest[trial] = (source.score, explored)
        return .exploit(from: donor, config: explored)
    }

    public mutating func complete(_ trial: Int) { latest[trial] = nil }

    /// A configuration perturbed as Ray Tune's PBT does by default.
    mutating func explore(_ config: TrialConfig) -> TrialConfig {
        var next = config
        for (name, domain) in space.parameters {
            guard let value = config[name] else { continue }
            if generator.uniform() < resampleProbability {
                next[name] = domain.sample(using: &generator)
                continue
            }
            let factor = generator.uniform() < 0.5 ? 0.8 : 1.2
            switch domain {
            case .uniform(let low, let high), .loguniform(let low, let high):
                next[name] = .double(Swift.min(Swift.max((value.number ?? low) * factor, low), high))
            case .quniform(let low, let high, let q):
                next[name] = .double(
                    Domain.quantise(Swift.min(Swift.max((value.number ?? low) * factor, low), high), low: low, high: high, q: q))
            case .randint(let low, let high):
                let scaled = Int(((value.number ?? Double(low)) * factor).rounded())
                next[name] = .int(Swift.min(Swift.max(scaled, low), high - 1))
            case .choice(let values), .grid(let values):
                guard let index = values.firstIndex(of: value) else { continue }
                let shift = generator.uniform() < 0.5 ? -1 : 1
                next[name] = values[Swift.min(Swift.max(index + shift, 0), values.count - 1)]
            case .constant: break
            }
        }
        return next
    }
}
