import Foundation
import Shoal
import ShoalRL
import ShoalRollouts

extension RLSetup {
    /// The progress line's tail on rollout workers: the sampling rate, the runners' own share of
    /// the sampling phase, and the learner's rate.
    static func details(sampled: Int, sampling: Duration, busy: Double, learner: String) -> String {
        String(
            format: "  sampling %.0f steps/s (runners busy %.0f%% of it)  learner ",
            Double(sampled) / max(sampling.seconds, 1e-9),
            100 * busy / max(sampling.seconds, 1e-9)) + learner
    }

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
            var (sampled, sampling, learning, busy) = (0, Duration.zero, Duration.zero, 0.0)
            do {
                let curve = try await run.run(
                    agent, progress: progress,
                    details: {
                        Self.details(
                            sampled: sampled, sampling: sampling, busy: busy,
                            learner: String(format: "%.0f updates/s", Double(agent.updatesDone) / max(learning.seconds, 1e-9)))
                    }
                ) { steps in
                    let target = agent.stepsDone + steps
                    while agent.stepsDone < target {
                        let rollout = try await group.sample(weights: agent.policy.flattened(), steps: agent.config.steps)
                        let sampledAt = ContinuousClock.now
                        agent.learn(from: rollout)
                        sampled += rollout.steps * rollout.environments
                        learning += ContinuousClock.now - sampledAt
                        sampling = await group.samplingTime
                        busy = await group.runnerSeconds
                    }
                }
                await group.shutdown()
                return curve
            } catch {
                await group.shutdown()
                throw error
            }
        }
    }
    // Off-policy learners on rollout workers: the workers' transitions feed the learner's
    // replay buffer; the next batch samples (with the weights of then) while the learner
    // updates on the last. Each call brings about 256 transitions.
    static func offPolicyOnRunners<Base: Environment>(
        _ agent: any OffPolicyLearner, _ name: RolloutEnvironment, _ evaluation: Base, total: Int, interval: Int, seed: UInt64,
        environmentsPerRunner: Int?, encoder: [UInt8]? = nil
    ) -> RunnerTraining {
        { cluster, options, requestedInterval, episodes, stopAt, progress, events in
            var options = options
            options.environmentsPerRunner = environmentsPerRunner ?? 1
            let perCall = options.runners * options.environmentsPerRunner
            let steps = max(1, 256 / perCall)
            progress(
                "Acting network: \(agent.actingWeights.count) parameters, published once per batch through the object store; "
                    + "batches of \(steps) steps of \(options.runners) × \(options.environmentsPerRunner) environments, sampled while the learner updates."
            )
            let group = try await EnvRunnerGroup(
                cluster: cluster, environment: name, seed: seed, gamma: 0.99, policy: .offPolicy(agent.acting),
                encoder: encoder, options: options, observer: events)
            let run = TrainingRun(
                totalSteps: total, evaluationInterval: requestedInterval ?? interval, evaluationEpisodes: episodes,
                stopAt: stopAt,
                environmentName: name.displayName, seed: seed, evaluationEnvironment: evaluation)
            var (sampling, learning, sampled, busy) = (Duration.zero, Duration.zero, 0, 0.0)
            var inFlight: (task: Task<Transitions, any Error>, count: Int)?
            /// Starts the next batch; `ahead`: steps sampled but not yet learnt from.
            func launch(ahead: Int = 0) {
                let weights = agent.actingWeights
                let exploration = agent.exploration(atStep: agent.stepsDone + ahead)
                inFlight = (
                    Task { try await group.collect(weights: weights, steps: steps, exploration: exploration) }, steps * perCall
                )
            }
            do {
                let curve = try await run.run(
                    agent, progress: progress,
                    details: {
                        Self.details(
                            sampled: sampled, sampling: sampling, busy: busy,
                            learner: String(format: "%.0f steps/s", Double(sampled) / max(learning.seconds, 1e-9)))
                    }
                ) { stretch in
                    let target = min(total, agent.stepsDone + stretch)
                    while agent.stepsDone < target {
                        if inFlight == nil { launch() }
                        guard let pending = inFlight else { break }
                        let transitions = try await pending.task.value
                        inFlight = nil
                        let batch = transitions.prefix(total - agent.stepsDone)
                        // The next batch samples with the current weights while these are learnt from.
                        if agent.stepsDone + batch.count < total { launch(ahead: batch.count) }
                        let started = ContinuousClock.now
                        agent.learn(from: batch)
                        learning += ContinuousClock.now - started
                        sampled += batch.count
                        sampling = await group.samplingTime
                        busy = await group.runnerSeconds
                    }
                }
                inFlight?.task.cancel()
                await group.shutdown()
                return curve
            } catch {
                inFlight?.task.cancel()
                await group.shutdown()
                throw error
            }
        }
    }
}
