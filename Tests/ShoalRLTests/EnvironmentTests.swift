import Foundation
import ShoalMarket
import Testing

@testable import ShoalRL

/// A trace recorded from Gymnasium 1.4.0 (see Fixtures/).
struct Trace: Decodable {
    struct Step: Decodable {
        var action: Int?
        var action_f32: [Float]?
        var state_f64: [Double]
        var obs_f32: [Float]
        var reward: Double
        var terminated: Bool
        var truncated: Bool
    }
    var initial_state_f64: [Double]
    var initial_obs_f32: [Float]
    var steps: [Step]

    static func load(_ name: String) throws -> Trace {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)")
        return try JSONDecoder().decode(Trace.self, from: Data(contentsOf: url))
    }
}

struct EnvironmentTests {
    @Test func cartPoleMatchesGymnasiumStepForStep() throws {
        let trace = try Trace.load("cartpole_trace.json")
        var environment = CartPole()
        let s = trace.initial_state_f64
        #expect(environment.reset(state: (s[0], s[1], s[2], s[3])) == trace.initial_obs_f32)
        for (index, step) in trace.steps.enumerated() {
            let outcome = environment.step([Float(step.action ?? 0)])
            let state = environment.state
            let mine = [state.0, state.1, state.2, state.3]
            #expect(zip(mine, step.state_f64).allSatisfy { abs($0 - $1) <= 1e-12 * max(1, abs($1)) }, "state at step \(index)")
            #expect(outcome.observation == step.obs_f32, "observation at step \(index)")
            #expect(outcome.reward == step.reward && outcome.terminated == step.terminated && outcome.truncated == step.truncated)
        }
        #expect(trace.steps.last?.terminated == true, "the trace ends with the pole down")
    }

    @Test func pendulumMatchesGymnasiumStepForStep() throws {
        let trace = try Trace.load("pendulum_trace.json")
        var environment = Pendulum()
        let s = trace.initial_state_f64
        #expect(environment.reset(state: (s[0], s[1])) == trace.initial_obs_f32)
        for (index, step) in trace.steps.enumerated() {
            let outcome = environment.step(step.action_f32 ?? [0])
            let state = environment.state
            #expect(
                abs(state.0 - step.state_f64[0]) <= 1e-12 && abs(state.1 - step.state_f64[1]) <= 1e-12, "state at step \(index)")
            #expect(outcome.observation == step.obs_f32, "observation at step \(index)")
            #expect(abs(outcome.reward - step.reward) <= 1e-12, "reward at step \(index): \(outcome.reward) vs \(step.reward)")
            #expect(!outcome.terminated)
        }
    }

    @Test func timeLimitsAndSeededResets() {
        var cartPole = CartPole(maxSteps: 3)
        let first = cartPole.reset(seed: 7)
        #expect(first.allSatisfy { abs($0) < 0.05 }, "reset state within ±0.05")
        var again = CartPole(maxSteps: 3)
        #expect(again.reset(seed: 7) == first, "seeded resets repeat")
        var outcome = cartPole.step([1])
        outcome = cartPole.step([0])
        outcome = cartPole.step([1])
        #expect(outcome.truncated && !outcome.terminated, "truncated at the time limit")
        var pendulum = Pendulum()
        let start = pendulum.reset(seed: 3)
        #expect(abs(start[0] * start[0] + start[1] * start[1] - 1) < 1e-6 && abs(start[2]) <= 1)
        #expect(Pendulum.normalize(3 * Double.pi) == -Double.pi || abs(Pendulum.normalize(3 * Double.pi) - Double.pi) < 1e-12)
        #expect(abs(Pendulum.normalize(0.5 + 4 * Double.pi) - 0.5) < 1e-12)
    }

    @Test func spacesClipSampleAndContain() {
        let box = Space.box(low: [-1, 0], high: [1, 2])
        #expect(box.clip([3, -1]) == [1, 0] && box.contains([0.5, 1]) && !box.contains([2, 1]))
        #expect(Space.discrete(3).contains([2]) && !Space.discrete(3).contains([3]) && !Space.discrete(3).contains([0.5]))
        var generator = SeededGenerator(seed: 1)
        for _ in 0..<100 {
            #expect(box.contains(box.sample(using: &generator)))
            #expect(Space.discrete(4).contains(Space.discrete(4).sample(using: &generator)))
        }
        #expect(box.dimension == 2 && Space.discrete(5).dimension == 1 && Space.discrete(5).actions == 5 && box.actions == nil)
    }

    @Test func vectorisedEnvironmentsResetEpisodesAndReportThem() {
        var environments = VectorEnvironment(count: 3) { _ in CartPole(maxSteps: 5) }
        environments.reset(seed: 10)
        var finished: [(environment: Int, episodeReturn: Double, length: Int)] = []
        var finals = 0
        for _ in 0..<12 {
            let outcome = environments.step([1, 1, 1])
            finished += outcome.finishedEpisodes
            finals += outcome.finalObservations.count
            #expect(outcome.observations.count == 12)
        }
        #expect(finished.count >= 6 && finished.count == finals, "every ended episode reported with its last observation")
        #expect(finished.allSatisfy { $0.length <= 5 && $0.episodeReturn == Double($0.length) })
    }
}
