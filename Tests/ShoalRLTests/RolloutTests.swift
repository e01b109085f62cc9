import Foundation
import ShoalMarket
import ShoalTensor
import Testing

@testable import ShoalRL

/// Rollouts sampled apart and joined, as rollout workers' parts reach the learner.
struct RolloutTests {
    /// `steps` steps of CartPole copies `first ..< first + count` (seeded as one vector of all
    /// copies would seed them) with a policy that depends only on the observation.
    static func collect(first: Int, count: Int, steps: Int) -> Rollout {
        var collector = RolloutCollector(
            environments: VectorEnvironment(count: count) { _ in CartPole() }, gamma: 0.98)
        collector.reset(seed: 7 &+ UInt64(first))
        return collector.collect(
            steps: steps,
            policy: { observations in
                let rows = observations.shape[0]
                let actions = (0..<rows).map { Float(observations.scalars[$0 * 4 + 2] > 0 ? 1 : 0) }
                return PolicyStep(
                    actions: actions, logProbabilities: [Float](repeating: -0.5, count: rows),
                    values: (0..<rows).map { Float($0) })
            },
            value: { observations in [Float](repeating: 0.25, count: observations.shape[0]) })
    }

    /// Two workers' parts of four environments each, joined, are the rollout of all eight in one vector.
    @Test func partsJoinIntoTheRolloutOfAllTheEnvironments() throws {
        let whole = Self.collect(first: 0, count: 8, steps: 40)
        let joined = try Rollout.joined([
            Self.collect(first: 0, count: 4, steps: 40), Self.collect(first: 4, count: 4, steps: 40),
        ])
        #expect(joined.steps == whole.steps && joined.environments == whole.environments)
        #expect(joined.observations == whole.observations)
        #expect(joined.actions == whole.actions)
        #expect(joined.rewards == whole.rewards)
        #expect(joined.episodeStarts == whole.episodeStarts)
        #expect(joined.lastObservations == whole.lastObservations)
        #expect(joined.lastDone == whole.lastDone)
        #expect(joined.advantages(gamma: 0.98, lambda: 0.8).advantages.count == 8 * 40)
        #expect(
            joined.finishedEpisodes.map(\.length).sorted() == whole.finishedEpisodes.map(\.length).sorted(),
            "episodes finished in the parts are the whole's")
        #expect(throws: AgentError.self) {
            try Rollout.joined([Self.collect(first: 0, count: 2, steps: 5), Self.collect(first: 2, count: 2, steps: 6)])
        }
        #expect(throws: AgentError.self) { try Rollout.joined([]) }
    }

    /// A rollout travels as its buffers and comes back the same; buffers that do not fit its
    /// shape are an error on arrival, not a crash in the learner.
    @Test func aRolloutRoundTripsAndABadOneIsRefused() throws {
        let rollout = Self.collect(first: 0, count: 3, steps: 30)
        let decoded = try JSONDecoder().decode(Rollout.self, from: JSONEncoder().encode(rollout))
        #expect(decoded.observations == rollout.observations && decoded.values == rollout.values)
        #expect(decoded.finishedEpisodes.map(\.length) == rollout.finishedEpisodes.map(\.length))
        var broken = rollout
        broken.rewards.removeLast()
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Rollout.self, from: JSONEncoder().encode(broken)) }
    }

    /// The weights a learner publishes load into a runner's policy of the same shape, which then
    /// acts exactly as the learner's; a policy of another shape refuses them.
    @Test func publishedWeightsLoadIntoARunnersPolicy() throws {
        var config = PPO<CartPole>.Config()
        config.environments = 2
        config.steps = 16
        config.batchSize = 32
        config.epochs = 2
        let agent = try PPO(config: config) { _ in CartPole() }
        agent.train(steps: 64)
        var runner = try PPOPolicy(
            observationDimension: 4, actionSpace: .discrete(2), hidden: config.hidden, activation: config.activation, seed: 99)
        try runner.load(flattened: agent.policy.flattened())
        let observations = Tensor(shape: [3, 4], scalars: (0..<12).map { Float($0) * 0.05 - 0.3 })
        var (a, b) = (SeededGenerator(seed: 5), SeededGenerator(seed: 5))
        let mine = runner.decide(observations, using: &a)
        let theirs = agent.policy.decide(observations, using: &b)
        #expect(
            mine.actions == theirs.actions && mine.logProbabilities == theirs.logProbabilities && mine.values == theirs.values)
        var other = try PPOPolicy(observationDimension: 4, actionSpace: .discrete(2), hidden: [8], activation: .tanh, seed: 0)
        #expect(throws: AgentError.self) { try other.load(flattened: agent.policy.flattened()) }
    }
}
