import ShoalRL

/// The learning algorithms the platform trains on the market environments.
public enum TradingAlgorithm: String, Codable, Sendable, CaseIterable {
    case ppo, sac, td3, rainbow

    /// Whether it takes discrete actions (Rainbow) or boxes (SAC, TD3); PPO takes either.
    public func accepts(discrete: Bool) -> Bool {
        switch self {
        case .ppo: true
        case .rainbow: discrete
        case .sac, .td3: !discrete
        }
    }
}

/// Agents for the market environments with the platform's settings there, built the same
/// way in the driver and in the actors that train ensemble members.
public enum TradingAgents {
    /// PPO's settings on the market environments.
    public static func ppoConfig<Base: Environment>(seed: UInt64, total: Int) -> PPO<Base>.Config {
        var config = PPO<Base>.Config()
        config.seed = seed
        config.totalSteps = total
        config.gamma = 0.99
        config.gaeLambda = 0.95
        config.learningRate = 3e-4
        config.epochs = 10
        return config
    }

    /// An agent of `algorithm` for `environment`.
    /// - Parameter environments: PPO's environment copies (its rollout workers' together), nil
    ///   for its settings' own.
    /// - Throws: `AgentError` when the algorithm does not take the environment's actions.
    public static func make<Base: Environment>(
        _ algorithm: TradingAlgorithm, _ environment: Base, seed: UInt64, total: Int, environments: Int? = nil
    ) throws -> any Agent {
        let discrete = environment.actionSpace.actions != nil
        guard algorithm.accepts(discrete: discrete) else {
            throw AgentError(
                discrete
                    ? "\(algorithm.rawValue) takes box actions: leave out --discrete"
                    : "\(algorithm.rawValue) needs discrete actions: add --discrete")
        }
        switch algorithm {
        case .ppo:
            var config: PPO<Base>.Config = ppoConfig(seed: seed, total: total)
            if let environments { config.environments = environments }
            return try PPO(config: config) { _ in environment }
        case .sac:
            var config = SAC<Base>.Config()
            config.seed = seed
            config.learningStarts = 1000
            return try SAC(config: config, environment: environment)
        case .td3:
            var config = TD3<Base>.Config()
            config.seed = seed
            config.learningStarts = 1000
            config.hidden = [256, 256]
            return try TD3(config: config, environment: environment)
        case .rainbow:
            var config = Rainbow<Base>.Config()
            config.seed = seed
            config.totalSteps = total
            config.valueMin = -20
            config.valueMax = 20
            return try Rainbow(config: config, environment: environment)
        }
    }
}
