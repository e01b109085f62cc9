import Foundation
import ShoalRL
import ShoalTensor

/// What rebuilds a trained trading agent: its algorithm (or the ensemble), seed and budget, and
/// its market. `trading rl train --env trading` writes it beside the checkpoint (`agent.json`),
/// so that the backtester can run the agent again on the same market.
public struct TradingAgentRecipe: Codable, Sendable, Equatable {
    public static let fileName = "agent.json"

    /// `ppo`, `sac`, `td3`, `rainbow` or `ensemble`.
    public var algorithm: String
    public var seed: UInt64
    /// The training budget the agent was built for (it sets schedules such as PPO's).
    public var steps: Int
    public var market: TradingMarketSpec

    public init(algorithm: String, seed: UInt64, steps: Int, market: TradingMarketSpec) {
        self.algorithm = algorithm
        self.seed = seed
        self.steps = steps
        self.market = market
    }

    /// The ensemble's member algorithms for a market's actions, and each one's budget (the
    /// on-policy members five times the others').
    public static func ensembleMembers(discrete: Bool, total: Int) -> [(algorithm: TradingAlgorithm, budget: Int)] {
        let kinds: [TradingAlgorithm] = discrete ? [.ppo, .rainbow] : [.ppo, .sac, .td3]
        return kinds.map { ($0, $0 == .ppo || $0 == .rainbow ? total * 5 : total) }
    }

    /// The market's environments and the agent, untrained (restore a checkpoint into it).
    /// - Throws: `EnvironmentError` or `AgentError` for a recipe that cannot be built.
    public func build(encoderWeights: [String: Tensor]?) throws -> (agent: any Agent, market: TradingMarketSpec.Market) {
        let built = try market.build(encoderWeights: encoderWeights, seed: seed)
        return (try agent(for: built.train), built)
    }

    /// The agent, untrained, for a training environment.
    /// - Throws: `AgentError` for an unknown algorithm or one that does not take the actions.
    public func agent(for environment: TradingEnvironment) throws -> any Agent {
        if algorithm == "ensemble" {
            let members = try Self.ensembleMembers(discrete: market.discrete, total: steps).map {
                try TradingAgents.make($0.algorithm, environment, seed: seed, total: $0.budget)
            }
            var config = Ensemble<TradingEnvironment>.Config()
            config.seed = seed
            return try Ensemble(members: members, actionSpace: environment.actionSpace, config: config)
        }
        guard let kind = TradingAlgorithm(rawValue: algorithm) else {
            throw AgentError("unknown algorithm '\(algorithm)' in the agent's recipe")
        }
        return try TradingAgents.make(kind, environment, seed: seed, total: steps)
    }

    /// Trains a new agent on `environment` for the recipe's budget (each ensemble member for
    /// its own), in this process. An ensemble then selects its members again on `validation`:
    /// a member whose deterministic run there after costs does not match holding cash is left
    /// out (all out: the ensemble holds cash), as `trading rl train --algo ensemble` does.
    /// - Returns: the agent, and for an ensemble each member's validation return and whether it stays.
    public func train(
        on environment: TradingEnvironment, validation: TradingEnvironment? = nil
    ) throws -> (agent: any Agent, members: [(name: String, validationReturn: Double, kept: Bool)]) {
        let agent = try agent(for: environment)
        guard let ensemble = agent as? Ensemble<TradingEnvironment> else {
            agent.train(steps: steps)
            return (agent, [])
        }
        for (member, plan) in zip(ensemble.members, Self.ensembleMembers(discrete: market.discrete, total: steps)) {
            member.train(steps: plan.budget)
        }
        guard let validation else { return (agent, []) }
        var report: [(name: String, validationReturn: Double, kept: Bool)] = []
        var leftOut = Set<Int>()
        for (index, member) in ensemble.members.enumerated() {
            let returns = OutOfSample.returns(of: member, on: validation, seed: seed)
            let total = returns.reduce(1) { $0 * (1 + $1) } - 1
            if total < 0 { leftOut.insert(index) }
            report.append((ensemble.memberNames[index], total, total >= 0))
        }
        ensemble.leaveOut(leftOut, idle: market.discrete ? [1] : [0, 0])
        return (agent, report)
    }

    /// Loads `agent.json` and `checkpoint.safetensors` (and `encoder.safetensors` for hybrid
    /// features) from a folder `trading rl train` wrote.
    /// - Throws: `AgentError` naming what is missing or wrong.
    public static func load(
        folder: String
    ) throws -> (recipe: TradingAgentRecipe, agent: any Agent, market: TradingMarketSpec.Market) {
        guard let data = FileManager.default.contents(atPath: folder + "/" + fileName) else {
            throw AgentError("no \(folder)/\(fileName): give a folder trading rl train --env trading wrote")
        }
        let recipe: TradingAgentRecipe
        do {
            recipe = try JSONDecoder().decode(TradingAgentRecipe.self, from: data)
        } catch {
            throw AgentError("\(folder)/\(fileName) is not an agent's recipe: \(error)")
        }
        var encoder: [String: Tensor]?
        if recipe.market.features == .hybrid {
            do {
                encoder = try SafeTensors.read(path: folder + "/encoder.safetensors").tensors
            } catch {
                throw AgentError("the agent observes hybrid features, and \(folder)/encoder.safetensors cannot be read: \(error)")
            }
        }
        let (agent, market) = try recipe.build(encoderWeights: encoder)
        try agent.load(from: folder + "/checkpoint.safetensors")
        return (recipe, agent, market)
    }
}
