import ShoalMarket

/// One environment stepped by an off-policy learner: box actions are taken in [−1, 1] per
/// dimension (the learner's scale) and mapped onto the box, discrete ones as the action's
/// index (one value); each transition goes into the
/// replay buffer (the next observation being the episode's last one when it ended), episodes
/// reset as they end and their returns are kept.
struct OffPolicyInteraction<Base: Environment>: Sendable {
    private(set) var environment: Base
    private(set) var observation: [Float]
    let low: [Float]
    let high: [Float]
    private var episodeReturn = 0.0
    private(set) var returns: [Double] = []

    /// The number of actions of a discrete space (nil: a box).
    let discreteActions: Int?

    /// - Parameter discrete: the environment's actions are discrete (else a box with finite bounds).
    init(environment: Base, seed: UInt64, discrete: Bool = false) throws {
        guard case .box = environment.observationSpace else { throw AgentError("this learner needs box observations") }
        if discrete {
            guard let actions = environment.actionSpace.actions else { throw AgentError("this learner needs discrete actions") }
            (low, high, discreteActions) = ([], [], actions)
        } else {
            guard case .box(let low, let high) = environment.actionSpace else {
                throw AgentError("this learner needs box actions")
            }
            guard zip(low, high).allSatisfy({ $0.isFinite && $1.isFinite && $0 < $1 }) else {
                throw AgentError("this learner needs finite action bounds")
            }
            (self.low, self.high, discreteActions) = (low, high, nil)
        }
        self.environment = environment
        observation = self.environment.reset(seed: seed)
    }

    var observationDimension: Int { observation.count }
    var actionDimension: Int { discreteActions == nil ? low.count : 1 }

    /// An action in [−1, 1] mapped onto the environment's box (a discrete action as it is).
    func environmentAction(_ scaled: [Float]) -> [Float] {
        guard discreteActions == nil else { return scaled }
        return scaled.indices.map { low[$0] + (Swift.min(Swift.max(scaled[$0], -1), 1) + 1) / 2 * (high[$0] - low[$0]) }
    }

    /// Steps with `scaled` (in [−1, 1]) and stores the transition.
    mutating func step(_ scaled: [Float], into buffer: inout ReplayBuffer, gamma: Float) {
        let (before, outcome) = advance(scaled)
        buffer.add(
            observation: before[...], action: scaled[...], reward: Float(outcome.reward),
            nextObservation: outcome.observation[...],
            terminal: outcome.terminated, discount: gamma)
    }

    /// Steps with `scaled` (in [−1, 1]) and appends the transition of environment `stream`
    /// (and the return of an episode that ended).
    mutating func step(_ scaled: [Float], stream: Int, into transitions: inout Transitions) {
        let finished = returns.count
        let (before, outcome) = advance(scaled)
        transitions.observations += before
        transitions.actions += scaled
        transitions.rewards.append(Float(outcome.reward))
        transitions.nextObservations += outcome.observation
        transitions.terminals.append(outcome.terminated ? 1 : 0)
        transitions.streams.append(stream)
        if returns.count > finished {
            transitions.episodeReturns.append(returns[returns.count - 1])
            transitions.episodeEnds.append(transitions.count - 1)
        }
    }

    /// Starts a new episode with a new seed.
    mutating func reset(seed: UInt64) {
        observation = environment.reset(seed: seed)
        episodeReturn = 0
    }

    /// One step: the observation it answered and the outcome; an episode that ends is reset.
    private mutating func advance(_ scaled: [Float]) -> (before: [Float], outcome: StepResult) {
        let before = observation
        let outcome = environment.step(environmentAction(scaled))
        episodeReturn += outcome.reward
        if outcome.done {
            returns.append(episodeReturn)
            episodeReturn = 0
            observation = environment.reset(seed: nil)
        } else {
            observation = outcome.observation
        }
        return (before, outcome)
    }
}
