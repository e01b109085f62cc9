import Foundation
import Shoal
import ShoalRL

/// Training loops whose environments step on rollout workers (an `EnvRunnerGroup`), the
/// learner in this process: PPO sampling synchronously, off-policy learners fed while they
/// update. The group is the caller's to start and shut down.
public enum RolloutTraining {
    /// The progress line's tail on rollout workers: the sampling rate, the runners' own share of
    /// the sampling phase, and the learner's rate.
    public static func details(sampled: Int, sampling: Duration, busy: Double, learner: String) -> String {
        String(
            format: "  sampling %.0f steps/s (runners busy %.0f%% of it)  learner ",
            Double(sampled) / max(sampling.seconds, 1e-9),
            100 * busy / max(sampling.seconds, 1e-9)) + learner
    }

    /// PPO with its rollouts sampled by `group` (whose runners × environments must be the
    /// configuration's environments): each iteration publishes the policy once, joins the
    /// runners' parts into the rollout one process would have collected, then learns.
    public static func ppo<Base: Environment>(
        _ agent: PPO<Base>, on group: EnvRunnerGroup, run: TrainingRun<Base>, progress: (String) -> Void = { _ in }
    ) async throws -> LearningCurve {
        var (sampled, sampling, learning, busy) = (0, Duration.zero, Duration.zero, 0.0)
        return try await run.run(
            agent, progress: progress,
            details: {
                details(
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
    }

    /// Steps per environment in each off-policy batch: about 256 transitions a call.
    public static func batchSteps(_ options: EnvRunnerOptions) -> Int {
        max(1, 256 / max(1, options.runners * options.environmentsPerRunner))
    }

    /// An off-policy learner (SAC, TD3, Rainbow) fed by `group`: the runners' transitions go into
    /// its replay buffer; the next batch samples (with the weights of then) while it learns from
    /// the last; the run takes exactly `run.totalSteps` steps.
    public static func offPolicy<Base: Environment>(
        _ agent: any OffPolicyLearner, on group: EnvRunnerGroup, run: TrainingRun<Base>, progress: (String) -> Void = { _ in }
    ) async throws -> LearningCurve {
        let options = group.options
        let perCall = options.runners * options.environmentsPerRunner
        let steps = batchSteps(options)
        let total = run.totalSteps
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
        defer { inFlight?.task.cancel() }
        return try await run.run(
            agent, progress: progress,
            details: {
                details(
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
    }
}
