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

    /// A sampler of `count` copies of the environment for a PPO policy.
    func ppoSampler(_ spec: EnvRunnerSpec) throws -> any RolloutSampler {
        switch self {
        case .cartpole: try PPOSampler(spec, environments: VectorEnvironment(count: spec.environments) { _ in CartPole() })
        case .pendulum: try PPOSampler(spec, environments: VectorEnvironment(count: spec.environments) { _ in Pendulum() })
        }
    }
}
