import Foundation
import Shoal
import ShoalRL
import ShoalRollouts

extension RLSetup {
    static func onRunners<Base: Environment>(
        _ agent: PPO<Base>, _ name: RolloutEnvironment, _ evaluation: Base, interval: Int, seed: UInt64, encoder: [UInt8]? = nil
    ) -> RunnerTraining {
        { cluster, options, requestedInterval, episodes, stopAt, progress, events in
            var options = options
            options.environmentsPerRunner = agent.config.environments / options.runners
            progress(
                "Policy: \(agent.policy.parameterCount) parameters, published once per update through the object store; "
                    + "each update learns from \(agent.config.steps) steps of \(options.runners) × \(options.environmentsPerRunner) environments."
            )
            let group = try await EnvRunnerGroup(
                cluster: cluster, environment: name, seed: seed, gamma: agent.config.gamma,
                policy: .ppo(hidden: agent.config.hidden, activation: agent.config.activation), encoder: encoder,
                options: options, observer: events)
            let run = TrainingRun(
                totalSteps: agent.config.totalSteps, evaluationInterval: requestedInterval ?? interval,
                evaluationEpisodes: episodes, stopAt: stopAt, environmentName: name.displayName, seed: seed,
                evaluationEnvironment: evaluation)
            do {
                let curve = try await RolloutTraining.ppo(agent, on: group, run: run, progress: progress)
                await group.shutdown()
                return curve
            } catch {
                await group.shutdown()
                throw error
            }
        }
    }

    /// Off-policy learners on rollout workers (`RolloutTraining.offPolicy`).
    static func offPolicyOnRunners<Base: Environment>(
        _ agent: any OffPolicyLearner, _ name: RolloutEnvironment, _ evaluation: Base, total: Int, interval: Int, seed: UInt64,
        environmentsPerRunner: Int?, encoder: [UInt8]? = nil
    ) -> RunnerTraining {
        { cluster, options, requestedInterval, episodes, stopAt, progress, events in
            var options = options
            options.environmentsPerRunner = environmentsPerRunner ?? 1
            progress(
                "Acting network: \(agent.actingWeights.count) parameters, published once per batch through the object store; "
                    + "batches of \(RolloutTraining.batchSteps(options)) steps of \(options.runners) × \(options.environmentsPerRunner) environments, sampled while the learner updates."
            )
            let group = try await EnvRunnerGroup(
                cluster: cluster, environment: name, seed: seed, gamma: 0.99, policy: .offPolicy(agent.acting),
                encoder: encoder, options: options, observer: events)
            let run = TrainingRun(
                totalSteps: total, evaluationInterval: requestedInterval ?? interval, evaluationEpisodes: episodes,
                stopAt: stopAt, environmentName: name.displayName, seed: seed, evaluationEnvironment: evaluation)
            do {
                let curve = try await RolloutTraining.offPolicy(agent, on: group, run: run, progress: progress)
                await group.shutdown()
                return curve
            } catch {
                await group.shutdown()
                throw error
            }
        }
    }
}
