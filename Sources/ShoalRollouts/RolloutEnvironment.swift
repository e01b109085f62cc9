import ShoalRL
import ShoalTensor

/// An environment a rollout worker builds for itself: what travels to the worker is this
/// description (and, for hybrid features, the encoder's weights through the object store),
/// never the environment.
public enum RolloutEnvironment: Codable, Sendable, Equatable {
    case cartpole
    case pendulum
    /// The single-asset trading environment's training span.
    case trading(TradingMarketSpec)

    /// The environment's name (Gymnasium's spelling for the classic ones).
    public var displayName: String {
        switch self {
        case .cartpole: "CartPole-v1"
        case .pendulum: "Pendulum-v1"
        case .trading: "trading"
        }
    }

    /// A sampler of the spec's copies of the environment for a PPO policy.
    func ppoSampler(
        _ spec: EnvRunnerSpec, hidden: [Int], activation: MLP.Activation, encoder: [String: Tensor]?
    ) throws -> any RolloutSampler {
        let count = spec.environments
        switch self {
        case .cartpole:
            return try PPOSampler(
                spec, environments: VectorEnvironment(count: count) { _ in CartPole() }, hidden: hidden, activation: activation)
        case .pendulum:
            return try PPOSampler(
                spec, environments: VectorEnvironment(count: count) { _ in Pendulum() }, hidden: hidden, activation: activation)
        case .trading(let market):
            let environment = try market.build(encoderWeights: encoder, seed: spec.seed).train
            return try PPOSampler(
                spec, environments: VectorEnvironment(count: count) { _ in environment }, hidden: hidden, activation: activation)
        }
    }

    /// A collector of transitions of the spec's copies of the environment for an off-policy
    /// learner's acting network.
    /// - Throws: `AgentError` when the environment's actions are not the network's kind.
    func transitionSampler(
        _ spec: EnvRunnerSpec, acting: OffPolicyActor, encoder: [String: Tensor]?
    ) throws -> any TransitionSampler {
        func sampler<Base: Environment>(_ make: @escaping (Int) -> Base) throws -> any TransitionSampler {
            switch acting {
            case .continuous(let kind, let hidden): try ActorSampler(spec, kind: kind, hidden: hidden, make: make)
            case .q(let shape): try QSampler(spec, shape: shape, make: make)
            }
        }
        switch self {
        case .cartpole: return try sampler { _ in CartPole() }
        case .pendulum: return try sampler { _ in Pendulum() }
        case .trading(let market):
            let environment = try market.build(encoderWeights: encoder, seed: spec.seed).train
            return try sampler { _ in environment }
        }
    }
}
