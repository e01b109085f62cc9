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

/// Off-policy transitions sampled apart from the learner.
struct TransitionTests {
    static func collect(count: Int, steps: Int, seed: UInt64 = 3) throws -> Transitions {
        var collector = try TransitionCollector(count: count, seed: seed) { _ in Pendulum() }
        var generator = SeededGenerator(seed: 1)
        return collector.collect(steps: steps) { observations in
            (0..<(observations.count / 3)).map { _ in Float(generator.uniform() * 2 - 1) }
        }
    }

    /// Workers' transitions join with each episode's end moved along; a prefix keeps only the
    /// returns of episodes that ended inside it; a malformed batch is refused on arrival.
    @Test func transitionsJoinCutAndTravel() throws {
        // Pendulum's episodes last 200 steps: 2 copies × 250 steps end 2 episodes, at transitions 398 and 399.
        let part = try Self.collect(count: 2, steps: 250)
        #expect(part.count == 500 && part.episodeEnds == [398, 399] && part.episodeReturns.count == 2)
        let joined = try Transitions.joined([part, try Self.collect(count: 2, steps: 250, seed: 9)])
        #expect(joined.count == 1000 && joined.episodeEnds == [398, 399, 898, 899])
        #expect(joined.prefix(899).episodeEnds == [398, 399, 898] && joined.prefix(899).count == 899)
        let decoded = try JSONDecoder().decode(Transitions.self, from: JSONEncoder().encode(joined))
        #expect(decoded.observations == joined.observations && decoded.episodeEnds == joined.episodeEnds)
        var broken = joined
        broken.episodeEnds[0] = 5000
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Transitions.self, from: JSONEncoder().encode(broken)) }
    }

    /// A learner fed transitions from elsewhere counts their steps and episodes and starts
    /// updating once past its learning start, one gradient step per environment step.
    @Test func anOffPolicyLearnerLearnsFromTransitionsSampledElsewhere() throws {
        var config = SAC<Pendulum>.Config()
        config.learningStarts = 300
        config.batchSize = 16
        config.hidden = [8, 8]
        let agent = try SAC(config: config, environment: Pendulum())
        #expect(agent.randomSteps == 300)
        var actor = agent.actingPolicy
        let before = actor.flattened()
        agent.learn(from: try Self.collect(count: 2, steps: 250))
        #expect(agent.stepsDone == 500 && agent.episodeReturns.count == 2)
        #expect(agent.actingPolicy.flattened() != before, "200 updates past the learning start changed the actor")
        try actor.load(flattened: agent.actingPolicy.flattened())
        var (a, b) = (SeededGenerator(seed: 4), SeededGenerator(seed: 4))
        let observations: [Float] = [0.5, -0.2, 0.1, 0.9, 0.3, -1]
        #expect(
            actor.act(observations, random: false, using: &a) == agent.actingPolicy.act(observations, random: false, using: &b))
    }
}

/// Rainbow fed one-step transitions from rollout workers.
struct RainbowFromWorkersTests {
    static func config() -> Rainbow<CartPole>.Config {
        var config = Rainbow<CartPole>.Config.stableBaselinesDQN
        config.nStep = 3
        config.learningStarts = 10_000
        config.hidden = [8, 8]
        config.seed = 5
        return config
    }

    /// Steps of one CartPole taken as the single-process learner takes them before learning
    /// starts (its environment seed, its generator's random actions), fed in batches of 7: the
    /// n-step windows span the batches and the stored transitions are the single process's.
    @Test func nStepTransitionsFromWorkersAreTheSingleProcessOnes() throws {
        let config = Self.config()
        let alone = try Rainbow(config: config, environment: CartPole())
        alone.train(steps: 301)
        let fed = try Rainbow(config: config, environment: CartPole())
        var collector = try TransitionCollector(count: 1, seed: config.seed, discrete: true) { _ in CartPole() }
        var generator = SeededGenerator(seed: config.seed &+ 31)
        for batch in stride(from: 0, to: 301, by: 7) {
            let transitions = collector.collect(steps: min(7, 301 - batch)) { _ in [Float(generator.next() % 2)] }
            fed.learn(from: transitions)
        }
        #expect(fed.stepsDone == 301 && fed.episodeReturns == alone.episodeReturns && fed.episodeReturns.count > 5)
        let (a, b) = (alone.replay, fed.replay)
        #expect(a.count == b.count && a.count > 290, "all but the last window's steps are stored: \(a.count)")
        #expect(a.gather(Array(0..<a.count)) == b.gather(Array(0..<b.count)))
        // ε falls from 1 to its final value over the first 10% of the run, but every action before
        // learning starts (10,000 here) is random.
        #expect(fed.exploration(atStep: 0) == 1 && fed.exploration(atStep: 9_999) == 1)
        #expect(abs(fed.exploration(atStep: 10_000) - config.finalExploration) < 1e-6)
    }

    /// Interleaved environments are followed apart; a stream that does not carry on from its
    /// last step (a replaced worker's fresh environment) has its window closed, bootstrapped.
    @Test func streamsAreFollowedApartAndABrokenStreamClosesItsWindow() throws {
        let fed = try Rainbow(config: Self.config(), environment: CartPole())
        var collector = try TransitionCollector(count: 2, seed: 1, firstStream: 4, discrete: true) { _ in CartPole() }
        var transitions = collector.collect(steps: 2) { _ in [0, 1] }
        #expect(transitions.streams == [4, 5, 4, 5])
        fed.learn(from: transitions)
        #expect(fed.replay.count == 0, "two steps of each stream: windows of 3 not yet full")
        collector.reset(seed: 99)
        transitions = collector.collect(steps: 1) { _ in [0, 1] }
        fed.learn(from: transitions.prefix(1))
        let stored = fed.replay.gather(Array(0..<fed.replay.count))
        #expect(stored.rewards.count == 2 && stored.terminals == [0, 0], "stream 4's two steps stored as far as its last one")
        #expect(abs(stored.rewards[0] - 1.99) < 1e-6 && stored.rewards[1] == 1)
        #expect(abs(stored.discounts[0] - 0.99 * 0.99) < 1e-6 && abs(stored.discounts[1] - 0.99) < 1e-6)
    }
}

/// The hybrid model's features computed as bars are met.
struct EncodedFeaturesTests {
    /// Each bar's row is the extractor's features of the window ending there, computed once;
    /// the trading environment observes them in place of the indicators.
    @Test func barsAreEncodedOnceAsTheyAreMet() throws {
        var config = HybridModel.Config()
        config.features = 3
        config.steps = 8
        config.convChannels = 4
        config.kernels = [3, 5]
        config.heads = 2
        config.lstmHidden = 4
        config.lstmLayers = 1
        config.fusionSize = 6
        let model = try HybridModel(config: config, seed: 1)
        let bars = 60
        let prices = (0..<bars).map { 100 + Double($0) * 0.1 }
        let values = (0..<(bars * 3)).map { Float(sin(Double($0) * 0.37)) }
        let inputs = try MarketFeatures(prices: prices, values: values, width: 3, names: ["a", "b", "c"], firstComplete: 2)
        let encoded = try EncodedFeatures(inputs: inputs, model: model, passes: 3)
        #expect(encoded.firstComplete == 9 && encoded.width == 6 + 2 && encoded.encodedBars == 1)
        let row = encoded.row(20)
        #expect(encoded.row(20) == row && encoded.encodedBars == 2, "a bar met again is not encoded again")
        var window = [Float](repeating: 0, count: 3 * 8)
        for step in 0..<8 { for feature in 0..<3 { window[feature * 8 + step] = values[(13 + step) * 3 + feature] } }
        let direct = FeatureExtractor(model: model, passes: 3).extract(Tensor(shape: [3, 8], scalars: window))
        #expect(Array(row.prefix(6)) == direct.fused && row[6] == direct.confidence)
        var trading = TradingEnvironment.Config()
        trading.episodeLength = 10
        var environment = try TradingEnvironment(market: inputs, config: trading, seed: 0, encoder: encoded)
        #expect(environment.observationSpace.dimension == 8 + 5)
        let first = environment.reset(seed: 3)
        #expect(Array(first.prefix(8)) == encoded.row(environment.currentBar))
        #expect(throws: EnvironmentError.self) {
            try TradingEnvironment(market: inputs, span: 2..<40, config: trading, seed: 0, encoder: encoded)
        }
    }
}

/// Rainbow's acting half as a value a rollout worker can hold.
struct QActorTests {
    /// Built from the learner's shape and loaded with its published weights, a Q actor takes the
    /// learner's greedy actions; ε = 1 acts at random; weights of another shape are refused.
    @Test func aQActorLoadedWithPublishedWeightsActsAsTheLearner() throws {
        for dqn in [false, true] {
            var config = dqn ? Rainbow<CartPole>.Config.stableBaselinesDQN : Rainbow<CartPole>.Config()
            config.learningStarts = 50
            config.batchSize = 16
            config.hidden = [16, 16]
            let agent = try Rainbow(config: config, environment: CartPole())
            agent.train(steps: 120)
            let published = agent.actingQ
            var runner = try QActor(shape: published.shape)
            try runner.load(flattened: published.flattened())
            var generator = SeededGenerator(seed: 2)
            let observations: [Float] = (0..<20).map { Float($0 % 7) * 0.1 - 0.3 }
            let mine = runner.act(observations, epsilon: 0, deterministic: true, using: &generator)
            #expect(mine == agent.act(observations, deterministic: true), "dqn \(dqn)")
            let random = (0..<50).flatMap { _ in runner.act(Array(observations.prefix(4)), epsilon: 1, using: &generator) }
            #expect(Set(random) == [0, 1], "ε = 1 takes both actions")
            var other = published.shape
            other.hidden = [8, 8]
            var wrong = try QActor(shape: other)
            #expect(throws: AgentError.self) { try wrong.load(flattened: published.flattened()) }
        }
    }
}
