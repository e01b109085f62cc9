import Foundation
import ShoalBacktest
import ShoalRL
import ShoalTensor
import Testing

@testable import ShoalRollouts

struct AgentSignalsTests {
    static func recipe(_ algorithm: String, discrete: Bool = false) -> TradingAgentRecipe {
        var market = TradingMarketSpec()
        market.bars = 2_000
        market.discrete = discrete
        return TradingAgentRecipe(algorithm: algorithm, seed: 3, steps: 2_048, market: market)
    }

    /// A saved agent comes back from its folder acting as it did.
    @Test func aRecipeAndCheckpointRebuildTheAgent() throws {
        let folder = NSTemporaryDirectory() + "shoal-agent-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let recipe = Self.recipe("ppo")
        let (agent, market) = try recipe.build(encoderWeights: nil)
        agent.train(steps: 256)
        try agent.save(to: folder + "/checkpoint.safetensors")
        try JSONEncoder().encode(recipe).write(to: URL(fileURLWithPath: folder + "/agent.json"))
        let (loadedRecipe, loaded, _) = try TradingAgentRecipe.load(folder: folder)
        #expect(loadedRecipe == recipe)
        var environment = market.test
        let observation = environment.reset(seed: 1)
        #expect(loaded.act(observation, deterministic: true) == agent.act(observation, deterministic: true))
        #expect(throws: AgentError.self) { try TradingAgentRecipe.load(folder: folder + "/missing") }
    }

    /// One signal a bar of the span but the last; the weight is the position the agent took
    /// there, the action its change; a single agent is certain.
    @Test func aSingleAgentsSignalsFollowItsPositions() throws {
        let (agent, market) = try Self.recipe("ppo").build(encoderWeights: nil)
        let test = market.test
        let signals = AgentSignals.signals(
            agent: agent, environment: test, symbol: "AAA", timestamps: Array(0..<2_000).map { Int64($0) }, invested: 0.5,
            version: "ppo")
        #expect(signals.count == test.span.count - 1)
        #expect(signals.map(\.bar) == Array(test.span.dropLast()))
        var previous = 0.0
        for signal in signals {
            #expect(abs(signal.targetWeight) <= 0.5 + 1e-9 && signal.confidence == 1 && signal.disagreement == 0)
            let expected: TradingSignal.Action =
                signal.targetWeight > previous + 1e-12 ? .buy : signal.targetWeight < previous - 1e-12 ? .sell : .hold
            #expect(signal.action == expected)
            previous = signal.targetWeight
        }
    }

    /// The ensemble's signals carry its members' disagreement: the share of weight that voted
    /// otherwise (discrete), within 0…1.
    @Test func theEnsemblesSignalsCarryItsMembersDisagreement() throws {
        let (agent, market) = try Self.recipe("ensemble", discrete: true).build(encoderWeights: nil)
        let signals = AgentSignals.signals(
            agent: agent, environment: market.validation, symbol: "AAA", timestamps: [], invested: 1, version: "ensemble")
        #expect(signals.count == market.validation.span.count - 1)
        #expect(
            signals.allSatisfy {
                $0.confidence >= 0 && $0.confidence <= 1 + 1e-9 && abs($0.confidence + $0.disagreement - 1) < 1e-9
            })
        #expect(signals.contains { $0.disagreement > 0 }, "untrained members do not all agree")
    }
}
