import Foundation
import ShoalMarket
import ShoalTensor

/// Several agents acting together on one environment: each step every member proposes an
/// action, and the ensemble takes their weighted vote (the weighted mean of box actions; the
/// discrete action with the largest total weight). The weights come from Thompson sampling:
/// each member's recent rewards — earned by its own actions, on a shadow copy of the
/// environment it alone steers — give a normal posterior of its mean reward; one draw from
/// each posterior, through a softmax, gives the weights. Every step's weights are kept for audit.
public final class Ensemble<Base: Environment>: Agent {
    public struct Config: Sendable, Codable, Equatable {
        /// Rewards per member that inform its posterior (the most recent ones).
        public var window = 64
        /// The prior of each member's mean reward: N(priorMean, priorDeviation²).
        public var priorMean = 0.0
        public var priorDeviation = 1.0
        /// The softmax temperature; nil uses the members' mean posterior deviation, so weights
        /// spread as far as the evidence is uncertain.
        public var temperature: Double?
        public var seed: UInt64 = 0

        public init() {}
    }

    /// One step of an ensemble episode, for audit.
    public struct Decision: Sendable {
        public var step: Int
        public var weights: [Double]
        public var memberActions: [[Float]]
        public var action: [Float]
        public var reward: Double
    }

    public let name = "ensemble"
    public let config: Config
    public let members: [any Agent]
    public let memberNames: [String]
    private let actionSpace: Space
    private var generator: SeededGenerator
    private var recent: [[Double]]
    public private(set) var currentWeights: [Double]
    /// Members that take part (a member left out gets weight 0: one that did not match holding
    /// cash on the validation span, say).
    public private(set) var included: [Bool]
    /// Every decision taken by `run`, in order.
    public private(set) var history: [Decision] = []

    public var stepsDone: Int { members.reduce(0) { $0 + $1.stepsDone } }
    public var episodeReturns: [Double] { members.flatMap(\.episodeReturns) }

    /// - Throws: `AgentError` without members or with a bad configuration.
    public init(members: [any Agent], actionSpace: Space, config: Config = Config()) throws {
        guard !members.isEmpty else { throw AgentError("an ensemble needs members") }
        guard config.window > 0, config.priorDeviation > 0, config.temperature.map({ $0 > 0 }) ?? true else {
            throw AgentError("ensemble: the window, prior deviation and temperature must be positive")
        }
        self.members = members
        self.actionSpace = actionSpace
        self.config = config
        memberNames = members.enumerated().map { "\($0.element.name)\($0.offset)" }
        generator = SeededGenerator(seed: config.seed)
        recent = Array(repeating: [], count: members.count)
        currentWeights = [Double](repeating: 1 / Double(members.count), count: members.count)
        included = [Bool](repeating: true, count: members.count)
    }

    /// The action sent when every member is left out (holding cash, say).
    public private(set) var idleAction: [Float]?

    /// Leaves out the members at `indices` (weight 0 from now on); when none is left, the
    /// ensemble sends `idle` (the environment's action for holding cash).
    public func leaveOut(_ indices: Set<Int>, idle: [Float]) {
        included = members.indices.map { !indices.contains($0) && included[$0] }
        let count = included.filter { $0 }.count
        idleAction = count == 0 ? idle : nil
        currentWeights = included.map { $0 ? 1 / Double(count) : 0 }
    }

    /// Trains every member for `steps / members` steps (each on its own environments).
    public func train(steps: Int) {
        let share = max(1, steps / members.count)
        for member in members { member.train(steps: share) }
    }

    /// Member i's posterior of its mean reward (normal prior, the window's sample variance
    /// taken as known).
    func posterior(_ member: Int) -> (mean: Double, deviation: Double) {
        let rewards = recent[member]
        let priorPrecision = 1 / (config.priorDeviation * config.priorDeviation)
        guard rewards.count >= 2 else { return (config.priorMean, config.priorDeviation) }
        let n = Double(rewards.count)
        let mean = rewards.reduce(0, +) / n
        let variance = max(rewards.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1), 1e-12)
        let precision = priorPrecision + n / variance
        return ((config.priorMean * priorPrecision + mean * n / variance) / precision, (1 / precision).squareRoot())
    }

    /// New weights: one Thompson draw per member, through a softmax.
    func drawWeights() -> [Double] {
        let active = members.indices.filter { included[$0] }
        guard !active.isEmpty else { return [Double](repeating: 0, count: members.count) }
        let posteriors = members.indices.map(posterior)
        // Every member draws (one generator sequence whatever is left out); only those included count.
        let draws = posteriors.map { $0.mean + $0.deviation * generator.normal() }
        let temperature =
            config.temperature ?? max(active.reduce(0) { $0 + posteriors[$1].deviation } / Double(active.count), 1e-9)
        let largest = active.map { draws[$0] }.max() ?? 0
        let exponentials = members.indices.map { included[$0] ? Foundation.exp((draws[$0] - largest) / temperature) : 0 }
        let total = exponentials.reduce(0, +)
        return exponentials.map { $0 / total }
    }

    /// The weighted vote of the members' actions for one observation.
    func combine(_ actions: [[Float]], weights: [Double]) -> [Float] {
        if let count = actionSpace.actions {
            var votes = [Double](repeating: 0, count: count)
            for (action, weight) in zip(actions, weights) { votes[min(max(Int(action[0]), 0), count - 1)] += weight }
            return [Float(votes.indices.max { votes[$0] < votes[$1] } ?? 0)]
        }
        var combined = [Float](repeating: 0, count: actions[0].count)
        for (action, weight) in zip(actions, weights) {
            for index in combined.indices { combined[index] += Float(weight) * action[index] }
        }
        return actionSpace.clip(combined)
    }

    public func act(_ observations: [Float], deterministic: Bool) -> [Float] {
        let proposals = members.map { $0.act(observations, deterministic: deterministic) }
        let rows = proposals[0].count / actionSpace.dimension
        if let idleAction { return (0..<rows).flatMap { _ in idleAction } }
        return (0..<rows).flatMap { row in
            combine(
                proposals.map { Array($0[row * actionSpace.dimension..<(row + 1) * actionSpace.dimension]) },
                weights: currentWeights)
        }
    }

    /// Runs one episode of `environment` (reset with `seed`) with the ensemble in charge,
    /// updating the members' posteriors from their shadow copies; returns each step's reward
    /// and `info`.
    public func run(_ environment: Base, seed: UInt64, deterministic: Bool = true) -> [(reward: Double, info: [String: Double])] {
        var real = environment
        var observation = real.reset(seed: seed)
        var shadows = members.map { _ in real }
        var shadowObservations = [[Float]](repeating: observation, count: members.count)
        var shadowDone = [Bool](repeating: false, count: members.count)
        var outcomes: [(Double, [String: Double])] = []
        var step = 0
        while true {
            currentWeights = drawWeights()
            let proposals = members.map { $0.act(observation, deterministic: deterministic) }
            let action = idleAction ?? combine(proposals, weights: currentWeights)
            let outcome = real.step(action)
            for index in members.indices where !shadowDone[index] {
                let own = members[index].act(shadowObservations[index], deterministic: deterministic)
                let shadow = shadows[index].step(own)
                shadowObservations[index] = shadow.observation
                shadowDone[index] = shadow.done
                recent[index].append(shadow.reward)
                if recent[index].count > config.window { recent[index].removeFirst() }
            }
            history.append(
                Decision(step: step, weights: currentWeights, memberActions: proposals, action: action, reward: outcome.reward))
            outcomes.append((outcome.reward, outcome.info))
            observation = outcome.observation
            step += 1
            if outcome.done { break }
        }
        return outcomes
    }

    public func checkpoint() -> [String: Tensor] {
        var named: [String: Tensor] = [:]
        for (member, prefix) in zip(members, memberNames) {
            for (key, value) in member.checkpoint() { named["\(prefix).\(key)"] = value }
        }
        return named
    }

    public func restore(_ saved: [String: Tensor]) throws {
        for (member, prefix) in zip(members, memberNames) {
            var own: [String: Tensor] = [:]
            for (key, value) in saved where key.hasPrefix(prefix + ".") { own[String(key.dropFirst(prefix.count + 1))] = value }
            try member.restore(own)
        }
    }
}
