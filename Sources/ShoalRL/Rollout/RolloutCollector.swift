import ShoalTensor

/// What a policy says for a batch of observations: one action each, and for on-policy
/// learning the log-probability of that action and the value of the observation.
public struct PolicyStep: Sendable {
    /// `[count × action dimension]`.
    public var actions: [Float]
    /// The actions as sent to the environment (clipped into a box's bounds).
    public var environmentActions: [Float]
    public var logProbabilities: [Float]
    public var values: [Float]

    public init(actions: [Float], environmentActions: [Float]? = nil, logProbabilities: [Float], values: [Float]) {
        self.actions = actions
        self.environmentActions = environmentActions ?? actions
        self.logProbabilities = logProbabilities
        self.values = values
    }
}

/// Trajectories of a set of environments over `steps` steps, time-major (`[step][environment]`).
/// It travels between processes as its raw float buffers (`Codable` writes each array whole).
public struct Rollout: Sendable, Codable {
    public let steps: Int
    public let environments: Int
    /// `[steps × environments × observation dimension]`.
    public var observations: [Float] = []
    /// `[steps × environments × action dimension]`.
    public var actions: [Float] = []
    /// Rewards, with a truncated episode's last reward already carrying γ · V(its last observation).
    public var rewards: [Float] = []
    /// 1 where the observation starts an episode.
    public var episodeStarts: [Float] = []
    public var values: [Float] = []
    public var logProbabilities: [Float] = []
    /// The observations after the last step, their values, and whether each environment's
    /// episode ended on the last step.
    public var lastObservations: [Float] = []
    public var lastValues: [Float] = []
    public var lastDone: [Float] = []
    /// Return and length of every episode that finished during the rollout.
    public var finishedEpisodes: [(episodeReturn: Double, length: Int)] = []

    public init(steps: Int, environments: Int) {
        self.steps = steps
        self.environments = environments
    }

    private enum CodingKeys: String, CodingKey {
        case steps, environments, observations, actions, rewards, episodeStarts, values, logProbabilities
        case lastObservations, lastValues, lastDone, episodeReturns, episodeLengths
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        steps = try container.decode(Int.self, forKey: .steps)
        environments = try container.decode(Int.self, forKey: .environments)
        observations = try container.decode([Float].self, forKey: .observations)
        actions = try container.decode([Float].self, forKey: .actions)
        rewards = try container.decode([Float].self, forKey: .rewards)
        episodeStarts = try container.decode([Float].self, forKey: .episodeStarts)
        values = try container.decode([Float].self, forKey: .values)
        logProbabilities = try container.decode([Float].self, forKey: .logProbabilities)
        lastObservations = try container.decode([Float].self, forKey: .lastObservations)
        lastValues = try container.decode([Float].self, forKey: .lastValues)
        lastDone = try container.decode([Float].self, forKey: .lastDone)
        let returns = try container.decode([Double].self, forKey: .episodeReturns)
        let lengths = try container.decode([Int].self, forKey: .episodeLengths)
        guard returns.count == lengths.count else {
            throw DecodingError.dataCorruptedError(
                forKey: .episodeLengths, in: container,
                debugDescription: "\(returns.count) episode returns, \(lengths.count) lengths")
        }
        finishedEpisodes = zip(returns, lengths).map { ($0, $1) }
        let count = steps * environments
        let perStep = [rewards, episodeStarts, values, logProbabilities]
        guard steps > 0, environments > 0, perStep.allSatisfy({ $0.count == count }),
            observations.count % count == 0, actions.count % count == 0,
            lastValues.count == environments, lastDone.count == environments,
            lastObservations.count == observations.count / steps
        else {
            throw DecodingError.dataCorruptedError(
                forKey: .observations, in: container,
                debugDescription: "the buffers do not match \(steps) steps of \(environments) environments")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(steps, forKey: .steps)
        try container.encode(environments, forKey: .environments)
        try container.encode(observations, forKey: .observations)
        try container.encode(actions, forKey: .actions)
        try container.encode(rewards, forKey: .rewards)
        try container.encode(episodeStarts, forKey: .episodeStarts)
        try container.encode(values, forKey: .values)
        try container.encode(logProbabilities, forKey: .logProbabilities)
        try container.encode(lastObservations, forKey: .lastObservations)
        try container.encode(lastValues, forKey: .lastValues)
        try container.encode(lastDone, forKey: .lastDone)
        try container.encode(finishedEpisodes.map(\.episodeReturn), forKey: .episodeReturns)
        try container.encode(finishedEpisodes.map(\.length), forKey: .episodeLengths)
    }

    /// Rollouts of the same steps over different environments as one rollout of all their
    /// environments, in the order given (what N rollout workers' parts make for the learner).
    /// - Throws: `AgentError` when the parts differ in steps or in observation or action width.
    public static func joined(_ parts: [Rollout]) throws -> Rollout {
        guard let first = parts.first else { throw AgentError("no rollouts to join") }
        if parts.count == 1 { return first }
        let steps = first.steps
        let observationWidth = first.observations.count / (steps * first.environments)
        let actionWidth = first.actions.count / (steps * first.environments)
        for part in parts
        where part.steps != steps
            || part.observations.count != steps * part.environments * observationWidth
            || part.actions.count != steps * part.environments * actionWidth
        {
            throw AgentError("rollouts of different steps or widths cannot be joined")
        }
        var joined = Rollout(steps: steps, environments: parts.reduce(0) { $0 + $1.environments })
        let total = steps * joined.environments
        joined.observations.reserveCapacity(total * observationWidth)
        joined.actions.reserveCapacity(total * actionWidth)
        for step in 0..<steps {
            for part in parts {
                let (row, count) = (step * part.environments, part.environments)
                joined.observations += part.observations[(row * observationWidth)..<((row + count) * observationWidth)]
                joined.actions += part.actions[(row * actionWidth)..<((row + count) * actionWidth)]
                joined.rewards += part.rewards[row..<(row + count)]
                joined.episodeStarts += part.episodeStarts[row..<(row + count)]
                joined.values += part.values[row..<(row + count)]
                joined.logProbabilities += part.logProbabilities[row..<(row + count)]
            }
        }
        for part in parts {
            joined.lastObservations += part.lastObservations
            joined.lastValues += part.lastValues
            joined.lastDone += part.lastDone
            joined.finishedEpisodes += part.finishedEpisodes
        }
        return joined
    }

    /// Generalised advantage estimates and returns (advantage + value), as Stable-Baselines3
    /// computes them.
    public func advantages(gamma: Float, lambda: Float) -> (advantages: [Float], returns: [Float]) {
        var advantages = [Float](repeating: 0, count: steps * environments)
        var running = [Float](repeating: 0, count: environments)
        for step in stride(from: steps - 1, through: 0, by: -1) {
            for env in 0..<environments {
                let index = step * environments + env
                let (nextValue, nextNonTerminal): (Float, Float) =
                    step == steps - 1
                    ? (lastValues[env], 1 - lastDone[env])
                    : (values[index + environments], 1 - episodeStarts[index + environments])
                let delta = rewards[index] + gamma * nextValue * nextNonTerminal - values[index]
                running[env] = delta + gamma * lambda * nextNonTerminal * running[env]
                advantages[index] = running[env]
            }
        }
        return (advantages, zip(advantages, values).map { $0 + $1 })
    }
}

/// Steps a set of environments with a policy and records what happened: the rollout side of
/// on-policy learning, apart from any learner, so that it can run wherever the environments
/// live (an actor on another node, say) given the policy.
public struct RolloutCollector<Base: Environment>: Sendable {
    public private(set) var environments: VectorEnvironment<Base>
    private var episodeStarts: [Float]
    public let gamma: Float

    public init(environments: VectorEnvironment<Base>, gamma: Float) {
        self.environments = environments
        self.gamma = gamma
        episodeStarts = [Float](repeating: 1, count: environments.count)
    }

    public var observationDimension: Int { environments.observationDimension }
    public var actionDimension: Int { environments.actionDimension }

    /// `steps` steps of every environment. `policy` answers a `[count × observation
    /// dimension]` batch; `value` gives the values of observations that ended truncated episodes
    /// (to bootstrap them) and of the last observations.
    public mutating func collect(
        steps: Int, policy: (Tensor) -> PolicyStep, value: (Tensor) -> [Float]
    ) -> Rollout {
        let count = environments.count
        let width = observationDimension
        var rollout = Rollout(steps: steps, environments: count)
        rollout.observations.reserveCapacity(steps * count * width)
        for _ in 0..<steps {
            let observations = environments.observations
            let decision = policy(Tensor(shape: [count, width], scalars: observations))
            let outcome = environments.step(decision.environmentActions)
            var rewards = outcome.rewards.map(Float.init)
            // A truncated episode still had value left: fold γ · V(last observation) into its reward.
            let truncated = outcome.finalObservations.keys.sorted().filter { outcome.truncated[$0] && !outcome.terminated[$0] }
            if !truncated.isEmpty {
                let finals = truncated.flatMap { outcome.finalObservations[$0] ?? [] }
                let bootstrap = value(Tensor(shape: [truncated.count, width], scalars: finals))
                for (position, env) in truncated.enumerated() { rewards[env] += gamma * bootstrap[position] }
            }
            rollout.observations += observations
            rollout.actions += decision.actions
            rollout.rewards += rewards
            rollout.episodeStarts += episodeStarts
            rollout.values += decision.values
            rollout.logProbabilities += decision.logProbabilities
            episodeStarts = (0..<count).map { outcome.terminated[$0] || outcome.truncated[$0] ? 1 : 0 }
            rollout.finishedEpisodes += outcome.finishedEpisodes.map { ($0.episodeReturn, $0.length) }
        }
        rollout.lastObservations = environments.observations
        rollout.lastValues = value(Tensor(shape: [count, width], scalars: environments.observations))
        rollout.lastDone = episodeStarts
        return rollout
    }

    /// Resets every environment (environment i with seed `seed + i`).
    public mutating func reset(seed: UInt64) {
        environments.reset(seed: seed)
        episodeStarts = [Float](repeating: 1, count: environments.count)
    }
}
