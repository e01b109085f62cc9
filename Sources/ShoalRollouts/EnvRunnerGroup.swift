import Distributed
import Foundation
import Shoal
import ShoalRL

/// How a group of rollout workers is laid on the cluster.
public struct EnvRunnerOptions: Codable, Sendable {
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
    /// The encoder's safetensors file in the object store, for hybrid features.
    private let encoder: ObjectRef<[UInt8]>?
    private var version = 0
    /// Parts sampled again after a worker died.
    public private(set) var failures = 0
    /// The time spent sampling: from publishing the weights to the joined parts.
    public private(set) var samplingTime = Duration.zero
    /// Over every call, the slowest runner's own time (weights read, environments stepped): what
    /// is left of `samplingTime` is the calls' overhead (publishing, sending, replying, joining).
    public private(set) var runnerSeconds = 0.0

    /// Starts the workers and waits until each is up.
    /// - Parameters:
    ///   - environment: what each worker builds, `environmentsPerRunner` copies of it.
    ///   - seed: the run's seed (environment copy k of the group resets with `seed + k`).
    ///   - gamma: the discount, to bootstrap truncated episodes of on-policy rollouts.
    ///   - policy: the shape of the policy the workers act with.
    ///   - encoder: the encoder's safetensors file, for an environment with hybrid features: put
    ///     into the object store once, read there by each worker.
    /// - Throws: `AgentError` for options that can never work, the cluster's error when the
    ///   workers cannot be placed.
    public init(
        cluster: Cluster, environment: RolloutEnvironment, seed: UInt64, gamma: Float, policy: RunnerPolicy,
        encoder: [UInt8]? = nil, options: EnvRunnerOptions, observer: @escaping @Sendable (EnvRunnerEvent) -> Void = { _ in }
    ) async throws {
        guard options.runners >= 1, options.environmentsPerRunner >= 1, options.cpusPerRunner >= 1, options.maxRestarts >= 0
        else {
            throw AgentError(
                "rollout workers: runners, environments per runner and CPUs must be at least 1, restarts not negative")
        }
        self.cluster = cluster
        self.options = options
        self.observer = observer
        if let encoder {
            self.encoder = try await cluster.put(encoder, inObjectStore: true)
        } else {
            self.encoder = nil
        }
        var runners: [EnvRunner] = []
        do {
            for index in 0..<options.runners {
                let spec = EnvRunnerSpec(
                    index: index, environment: environment, environments: options.environmentsPerRunner, seed: seed, gamma: gamma,
                    policy: policy, threads: options.cpusPerRunner)
                runners.append(
                    try await cluster.spawn(
                        EnvRunner.actorType, spec,
                        options: ActorOptions(
                            resources: Resources(cpu: Double(options.cpusPerRunner)), maxRestarts: options.maxRestarts,
                            ownProcess: true)))
            }
            let started = runners
            locations = try await withThrowingTaskGroup(of: (Int, RunnerLocation).self) { tasks in
                for (index, runner) in started.enumerated() { tasks.addTask { (index, try await runner.location()) } }
                var found = [RunnerLocation?](repeating: nil, count: started.count)
                for try await (index, location) in tasks { found[index] = location }
                return found.compactMap { $0 }
            }
        } catch {
            // The workers placed so far end with the failure, not with the job.
            for runner in runners { try? await cluster.kill(runner) }
            throw error
        }
        self.runners = runners
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
        let encoder = self.encoder
        let parts = try await onEveryRunner(weights) { runner, published, version, iteration in
            let part = try await runner.sample(
                weights: published, version: version, iteration: iteration, steps: steps, encoder: encoder)
            return (part.rollout, part.location, part.seconds)
        }
        let rollout = try Rollout.joined(parts)
        samplingTime += ContinuousClock.now - started
        return rollout
    }

    /// `steps` steps of every worker's environments with an off-policy learner's acting
    /// `weights` (`OffPolicyLearner.actingWeights`) and `exploration` (its
    /// `exploration(atStep:)`), the workers' transitions joined in worker order.
    /// - Throws: as `sample`.
    public func collect(weights: [Float], steps: Int, exploration: Float) async throws -> Transitions {
        let started = ContinuousClock.now
        let encoder = self.encoder
        let parts = try await onEveryRunner(weights) { runner, published, version, iteration in
            let part = try await runner.collect(
                weights: published, version: version, iteration: iteration, steps: steps, exploration: exploration,
                encoder: encoder)
            return (part.transitions, part.location, part.seconds)
        }
        let transitions = try Transitions.joined(parts)
        samplingTime += ContinuousClock.now - started
        return transitions
    }

    /// Publishes `weights` once and calls every worker with the reference; a worker whose
    /// process died is called again once the cluster has rebuilt it.
    private func onEveryRunner<Part: Sendable>(
        _ weights: [Float],
        _ call: @escaping @Sendable (EnvRunner, ObjectRef<[Float]>, Int, Int) async throws -> (Part, RunnerLocation, Double)
    ) async throws -> [Part] {
        // Always into the object store, however small: each worker reads the one copy on its
        // node instead of receiving its own with the call.
        let published = try await cluster.put(weights, inObjectStore: true)
        version += 1
        let (version, iteration) = (self.version, self.version - 1)
        let maxRestarts = options.maxRestarts
        let observer = self.observer
        let (parts, failed) = try await withThrowingTaskGroup(of: (Int, Part, RunnerLocation, Double, Int).self) { tasks in
            for (index, runner) in runners.enumerated() {
                tasks.addTask {
                    var failures = 0
                    while true {
                        do {
                            let (part, location, seconds) = try await call(runner, published, version, iteration)
                            return (index, part, location, seconds, failures)
                        } catch let died as ActorDiedError where failures < maxRestarts {
                            // The cluster rebuilds the worker; the call waits for it and samples the part afresh.
                            failures += 1
                            observer(.runnerFailed(index: index, iteration: iteration, reason: died.reason))
                        }
                    }
                }
            }
            var parts = [(Part, RunnerLocation, Double)?](repeating: nil, count: runners.count)
            var failed = 0
            for try await (index, part, location, seconds, failures) in tasks {
                parts[index] = (part, location, seconds)
                failed += failures
            }
            return (parts.compactMap { $0 }, failed)
        }
        failures += failed
        runnerSeconds += parts.map(\.2).max() ?? 0
        for (index, (_, location, _)) in parts.enumerated() where location != locations[index] {
            locations[index] = location
            observer(.runnerReplaced(index: index, iteration: iteration, node: location.node, pid: location.pid))
        }
        return parts.map(\.0)
    }

    /// Ends the workers.
    public func shutdown() async {
        for runner in runners { try? await cluster.kill(runner) }
    }
}
