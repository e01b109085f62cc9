import Distributed
import Foundation
import Shoal
import ShoalRL

/// How a group of rollout workers is laid on the cluster.
public struct EnvRunnerOptions: Sendable {
    /// Rollout workers (RLlib's `num_env_runners`).
    public var runners = 2
    /// Environment copies each worker steps (RLlib's `num_envs_per_env_runner`).
    public var environmentsPerRunner = 4
    public var cpusPerRunner = 1
    /// Times each worker is rebuilt after its process dies (RLlib's `restart_failed_env_runners`
    /// with `max_num_env_runner_restarts`).
    public var maxRestarts = 3

    public init(runners: Int = 2, environmentsPerRunner: Int = 4) {
        self.runners = runners
        self.environmentsPerRunner = environmentsPerRunner
    }
}

/// What a group of rollout workers tells whoever watches it.
public enum EnvRunnerEvent: Sendable {
    /// The workers are up: each one's node and process.
    case started(nodes: [String], pids: [Int32])
    /// A worker's process died during `iteration`; its part of that rollout is sampled again
    /// by its replacement.
    case runnerFailed(index: Int, iteration: Int, reason: String)
    /// A worker answered from a new process: the cluster replaced it.
    case runnerReplaced(index: Int, iteration: Int, node: String, pid: Int32)
}

/// The learner's side of rollouts on the cluster: N `EnvRunner` actors that each step
/// `environmentsPerRunner` copies of an environment. Each `sample` publishes the policy's
/// weights once through the object store (one put, read by every worker on its own node) and
/// joins the workers' parts into one rollout of all `N × M` environments, as one process with
/// that many would have collected. A worker whose process dies is rebuilt by the cluster and
/// asked again for its part, so no iteration comes up short.
public actor EnvRunnerGroup {
    public let cluster: Cluster
    public let options: EnvRunnerOptions
    private let runners: [EnvRunner]
    private let observer: @Sendable (EnvRunnerEvent) -> Void
    private var locations: [RunnerLocation]
    private var version = 0
    /// Parts sampled again after a worker died.
    public private(set) var failures = 0
    /// Environment steps sampled so far and the time spent waiting for them.
    public private(set) var sampledSteps = 0
    public private(set) var samplingTime = Duration.zero

    /// Starts the workers and waits until each is up.
    /// - Parameters:
    ///   - environment: what each worker builds, `environmentsPerRunner` copies of it.
    ///   - seed: the run's seed (environment copy k of the group resets with `seed + k`).
    ///   - gamma: the discount, to bootstrap truncated episodes.
    ///   - hidden, activation: the policy's shape.
    /// - Throws: `AgentError` for options that can never work, the cluster's error when the
    ///   workers cannot be placed.
    public init(
        cluster: Cluster, environment: RolloutEnvironment, seed: UInt64, gamma: Float, hidden: [Int], activation: MLP.Activation,
        options: EnvRunnerOptions, observer: @escaping @Sendable (EnvRunnerEvent) -> Void = { _ in }
    ) async throws {
        guard options.runners >= 1, options.environmentsPerRunner >= 1, options.cpusPerRunner >= 1, options.maxRestarts >= 0
        else {
            throw AgentError(
                "rollout workers: runners, environments per runner and CPUs must be at least 1, restarts not negative")
        }
        self.cluster = cluster
        self.options = options
        self.observer = observer
        var runners: [EnvRunner] = []
        for index in 0..<options.runners {
            let spec = EnvRunnerSpec(
                index: index, environment: environment, environments: options.environmentsPerRunner, seed: seed, gamma: gamma,
                hidden: hidden, activation: activation)
            runners.append(
                try await cluster.spawn(
                    EnvRunner.actorType, spec,
                    options: ActorOptions(
                        resources: Resources(cpu: Double(options.cpusPerRunner)), maxRestarts: options.maxRestarts,
                        ownProcess: true)))
        }
        self.runners = runners
        locations = try await withThrowingTaskGroup(of: (Int, RunnerLocation).self) { tasks in
            for (index, runner) in runners.enumerated() { tasks.addTask { (index, try await runner.location()) } }
            var found = [RunnerLocation?](repeating: nil, count: runners.count)
            for try await (index, location) in tasks { found[index] = location }
            return found.compactMap { $0 }
        }
        observer(.started(nodes: locations.map(\.node), pids: locations.map(\.pid)))
    }

    /// Environments in one rollout of every worker.
    public var environments: Int { options.runners * options.environmentsPerRunner }

    /// One rollout of `steps` steps of every worker's environments with `weights` (a
    /// `PPOPolicy.flattened()`), the workers' parts joined in worker order.
    /// - Throws: when a worker failed more than its restarts allow, or failed otherwise (a
    ///   worker's own error, such as weights of the wrong size).
    public func sample(weights: [Float], steps: Int) async throws -> Rollout {
        let started = ContinuousClock.now
        // Always into the object store, however small: each worker reads the one copy on its
        // node instead of receiving its own with the call.
        let published = try await cluster.put(weights, inObjectStore: true)
        version += 1
        let (version, iteration) = (self.version, self.version - 1)
        let maxRestarts = options.maxRestarts
        let observer = self.observer
        let parts = try await withThrowingTaskGroup(of: (Int, SampledPart, Int).self) { tasks in
            for (index, runner) in runners.enumerated() {
                tasks.addTask {
                    var failures = 0
                    while true {
                        do {
                            let part = try await runner.sample(
                                weights: published, version: version, iteration: iteration, steps: steps)
                            return (index, part, failures)
                        } catch let died as ActorDiedError where failures < maxRestarts {
                            // The cluster rebuilds the worker; the call waits for it and samples the part afresh.
                            failures += 1
                            observer(.runnerFailed(index: index, iteration: iteration, reason: died.reason))
                        }
                    }
                }
            }
            var parts = [SampledPart?](repeating: nil, count: runners.count)
            var failed = 0
            for try await (index, part, failures) in tasks {
                parts[index] = part
                failed += failures
            }
            return (parts.compactMap { $0 }, failed)
        }
        failures += parts.1
        for (index, part) in parts.0.enumerated() where part.location != locations[index] {
            locations[index] = part.location
            observer(.runnerReplaced(index: index, iteration: iteration, node: part.location.node, pid: part.location.pid))
        }
        let rollout = try Rollout.joined(parts.0.map(\.rollout))
        sampledSteps += rollout.steps * rollout.environments
        samplingTime += ContinuousClock.now - started
        return rollout
    }

    /// Ends the workers.
    public func shutdown() async {
        for runner in runners { try? await cluster.kill(runner) }
    }
}
