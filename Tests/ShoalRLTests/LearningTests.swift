import Foundation
import ShoalMarket
import ShoalTensor
import Testing

@testable import ShoalRL

/// One-step episodes: action 1 pays 1, action 0 pays 0.
struct Bandit: Environment {
    var observationSpace: Space { .box(low: [0], high: [1]) }
    var actionSpace: Space { .discrete(2) }
    mutating func reset(seed: UInt64?) -> [Float] { [0.5] }
    mutating func step(_ action: [Float]) -> StepResult {
        StepResult(observation: [0.5], reward: action[0] == 1 ? 1 : 0, terminated: true, truncated: false)
    }
}

/// One-step episodes with a continuous action: the reward is −(a − 0.5)².
struct Target: Environment {
    var observationSpace: Space { .box(low: [0], high: [1]) }
    var actionSpace: Space { .box(low: [-1], high: [1]) }
    mutating func reset(seed: UInt64?) -> [Float] { [0.3] }
    mutating func step(_ action: [Float]) -> StepResult {
        StepResult(observation: [0.3], reward: -Double((action[0] - 0.5) * (action[0] - 0.5)), terminated: true, truncated: false)
    }
}

struct BufferTests {
    @Test func advantagesFollowTheGAERecursion() {
        var rollout = Rollout(steps: 3, environments: 1)
        rollout.rewards = [1, 0, 2]
        rollout.values = [0.5, 0.2, 0.1]
        rollout.episodeStarts = [1, 0, 1]  // a new episode starts at step 2
        rollout.lastValues = [0.4]
        rollout.lastDone = [0]
        let (gamma, lambda): (Float, Float) = (0.9, 0.8)
        let (advantages, returns) = rollout.advantages(gamma: gamma, lambda: lambda)
        let a2: Float = 2 + gamma * 0.4 - 0.1
        let a1: Float = 0 - 0.2  // step 2 starts a new episode: no bootstrap across it
        let a0: Float = (1 + gamma * 0.2 - 0.5) + gamma * lambda * a1
        let expected: [Float] = [a0, a1, a2]
        let expectedReturns: [Float] = [a0 + 0.5, a1 + 0.2, a2 + 0.1]
        #expect(zip(advantages, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(advantages)")
        #expect(zip(returns, expectedReturns).allSatisfy { abs($0 - $1) < 1e-6 })
    }

    @Test func prioritisedReplayDrawsByPriorityWithBoundedWeights() {
        var priorities = PrioritizedReplay(capacity: 8, alpha: 1)
        for index in 0..<8 { priorities.setPriority(index, index == 3 ? 100 : 1) }
        var generator = SeededGenerator(seed: 2)
        let (indices, weights) = priorities.sample(1000, count: 8, beta: 1, using: &generator)
        let share = Double(indices.filter { $0 == 3 }.count) / 1000
        #expect(abs(share - 100.0 / 107) < 0.05, "index 3 drawn \(share) of the time")
        #expect(weights.allSatisfy { $0 > 0 && $0 <= 1 + 1e-6 })
        #expect(zip(indices, weights).filter { $0.0 == 3 }.allSatisfy { $0.1 < 0.1 }, "frequent draws weigh less")

        var buffer = ReplayBuffer(capacity: 2, observationDimension: 1, actionDimension: 1)
        for value in 0..<3 {
            buffer.add(
                observation: [Float(value)], action: [0], reward: Float(value), nextObservation: [0], terminal: false,
                discount: 0.9)
        }
        #expect(buffer.count == 2 && buffer.gather([0, 1]).rewards == [2, 1], "the oldest transition is overwritten")
    }

    @Test func theC51ProjectionKeepsProbabilityMass() throws {
        var config = Rainbow<Bandit>.Config()
        config.atoms = 5
        config.valueMin = 0
        config.valueMax = 4
        config.hidden = [8, 8]
        config.nStep = 1
        let agent = try Rainbow(config: config, environment: Bandit())
        var buffer = ReplayBuffer(capacity: 4, observationDimension: 1, actionDimension: 1)
        buffer.add(observation: [0.5], action: [1], reward: 1.5, nextObservation: [0.5], terminal: true, discount: 0.9)
        buffer.add(observation: [0.5], action: [0], reward: 0.3, nextObservation: [0.5], terminal: false, discount: 0.9)
        let batch = buffer.gather([0, 1])
        let projected = agent.projectedTargets(Tensor(shape: [2, 1], scalars: [0.5, 0.5]), nextActions: [0, 1], batch: batch)
        for row in 0..<2 {
            let mass = projected.scalars[(row * 5)..<(row * 5 + 5)].reduce(0, +)
            #expect(abs(mass - 1) < 1e-5, "row \(row) sums to \(mass)")
        }
        // Terminal: all mass at the reward 1.5, split between atoms 1 and 2.
        #expect(abs(projected.scalars[1] - 0.5) < 1e-5 && abs(projected.scalars[2] - 0.5) < 1e-5)
    }
}

struct AlgorithmTests {
    @Test func ppoLearnsABandit() throws {
        var config = PPO<Bandit>.Config()
        config.environments = 4
        config.steps = 16
        config.batchSize = 32
        config.epochs = 4
        config.hidden = [8]
        config.learningRate = 1e-2
        config.linearSchedule = false
        config.totalSteps = 2048
        let agent = try PPO(config: config) { _ in Bandit() }
        agent.train(steps: 1024)
        #expect(agent.act([0.5], deterministic: true) == [1])
        let late = agent.episodeReturns.suffix(100).reduce(0, +) / 100
        #expect(late > 0.8, "late training episodes pay \(late)")
    }

    @Test func rainbowAndPlainDQNLearnABandit() throws {
        for plain in [false, true] {
            var config = plain ? Rainbow<Bandit>.Config.stableBaselinesDQN : Rainbow<Bandit>.Config()
            config.hidden = [16, 16]
            config.learningStarts = 64
            config.batchSize = 16
            config.targetUpdateInterval = 20
            config.totalSteps = 600
            config.valueMin = -1
            config.valueMax = 2
            config.trainFrequency = 1
            config.learningRate = 5e-3
            let agent = try Rainbow(config: config, environment: Bandit())
            agent.train(steps: 600)
            #expect(agent.act([0.5], deterministic: true) == [1], plain ? "DQN" : "Rainbow")
        }
    }

    @Test func sacAndTD3LearnAContinuousTarget() throws {
        var sacConfig = SAC<Target>.Config()
        sacConfig.hidden = [16, 16]
        sacConfig.batchSize = 32
        sacConfig.learningRate = 3e-3
        let sac = try SAC(config: sacConfig, environment: Target())
        sac.train(steps: 800)
        let sacAction = sac.act([0.3], deterministic: true)[0]
        #expect(abs(sacAction - 0.5) < 0.2, "SAC acts \(sacAction)")

        var td3Config = TD3<Target>.Config()
        td3Config.hidden = [16, 16]
        td3Config.batchSize = 32
        td3Config.learningRate = 3e-3
        let td3 = try TD3(config: td3Config, environment: Target())
        td3.train(steps: 800)
        let td3Action = td3.act([0.3], deterministic: true)[0]
        #expect(abs(td3Action - 0.5) < 0.2, "TD3 acts \(td3Action)")
    }

    @Test func checkpointsRoundTripAndRefuseOtherAlgorithms() throws {
        var config = PPO<Pendulum>.Config()
        config.hidden = [8]
        config.environments = 1
        let agent = try PPO(config: config) { _ in Pendulum() }
        agent.train(steps: 64)
        let path = NSTemporaryDirectory() + "shoal-ppo-\(UInt32.random(in: 0...UInt32.max)).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try agent.save(to: path)
        var other = config
        other.seed = 99
        let fresh = try PPO(config: other) { _ in Pendulum() }
        #expect(fresh.act([1, 0, 0], deterministic: true) != agent.act([1, 0, 0], deterministic: true))
        try fresh.load(from: path)
        #expect(fresh.act([1, 0, 0], deterministic: true) == agent.act([1, 0, 0], deterministic: true))
        let td3 = try TD3(environment: Pendulum())
        #expect(throws: AgentError.self) { try td3.load(from: path) }
        #expect(throws: AgentError.self) { try SAC(environment: CartPole()) }
        #expect(throws: AgentError.self) { try Rainbow(environment: Pendulum()) }
        var bad = PPO<CartPole>.Config()
        bad.batchSize = 0
        #expect(throws: AgentError.self) { try PPO(config: bad) { _ in CartPole() } }
    }
}
