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
public struct Rollout: Sendable {
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
