import ShoalRL

/// An environment a rollout worker builds for itself, by name: what travels to the worker is
/// this description, never the environment.
public enum RolloutEnvironment: String, Codable, Sendable, CaseIterable {
    case cartpole
    case pendulum

    /// The environment's name as Gymnasium spells it.
    public var displayName: String {
        switch self {
        case .cartpole: "CartPole-v1"
        case .pendulum: "Pendulum-v1"
        }
    }

    /// A sampler of the spec's copies of the environment for a PPO policy.
    func ppoSampler(_ spec: EnvRunnerSpec, hidden: [Int], activation: MLP.Activation) throws -> any RolloutSampler {
        let count = spec.environments
        return switch self {
        case .cartpole:
            try PPOSampler(
                spec, environments: VectorEnvironment(count: count) { _ in CartPole() }, hidden: hidden, activation: activation)
        case .pendulum:
            try PPOSampler(
                spec, environments: VectorEnvironment(count: count) { _ in Pendulum() }, hidden: hidden, activation: activation)
        }
    }

    /// A collector of transitions of the spec's copies of the environment for an off-policy actor.
    /// - Throws: `AgentError` when the environment's actions are not a box.
    func transitionSampler(_ spec: EnvRunnerSpec, kind: ContinuousActor.Kind, hidden: [Int]) throws -> any TransitionSampler {
        switch self {
        case .cartpole: try ActorSampler(spec, kind: kind, hidden: hidden) { _ in CartPole() }
        case .pendulum: try ActorSampler(spec, kind: kind, hidden: hidden) { _ in Pendulum() }
        }
    }
}
