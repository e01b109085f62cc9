import Distributed
import Foundation
import Shoal
import ShoalMarket
import ShoalRL
import ShoalTensor

/// What a rollout worker is built with.
public struct EnvRunnerSpec: Codable, Sendable {
    /// The runner's place among its group's, 0 first: its environments are the group's copies
    /// `index × environments …` (seeded so), its parts come in this order.
    public var index: Int
    public var environment: RolloutEnvironment
    /// Copies of the environment it steps together.
    public var environments: Int
    /// The run's seed: environment copy k of the whole group resets with `seed + k`, as in one process.
    public var seed: UInt64
    public var gamma: Float
    /// The policy's shape (PPO's `hidden` and `activation`).
    public var hidden: [Int]
    public var activation: MLP.Activation

    public init(
        index: Int, environment: RolloutEnvironment, environments: Int, seed: UInt64, gamma: Float, hidden: [Int],
        activation: MLP.Activation
    ) {
        self.index = index
        self.environment = environment
        self.environments = environments
        self.seed = seed
        self.gamma = gamma
        self.hidden = hidden
        self.activation = activation
    }
}

/// A rollout worker: steps its vector of environments with the policy whose weights it is
/// handed by reference, and returns what happened. Its environments carry on from one call to
/// the next (episodes span rollouts, as in one process).
public distributed actor EnvRunner {
    public typealias ActorSystem = ClusterActorSystem

    let spec: EnvRunnerSpec
    private var sampler: (any RolloutSampler)?
    private var loadedVersion = -1
    private var iterationsSampled = 0

    /// The actor type to register with `Shoal.bootstrap(tasks:actors:)`.
    public static let actorType = ActorType("shoal.EnvRunner") { (spec: EnvRunnerSpec, system) in
        EnvRunner(spec: spec, actorSystem: system)
    }

    init(spec: EnvRunnerSpec, actorSystem: ClusterActorSystem) {
        self.actorSystem = actorSystem
        self.spec = spec
    }

    /// `steps` steps of every environment with the weights of update `version`, read from the
    /// object store when they are newer than the ones held.
    /// - Parameter iteration: the learner's iteration; a runner that starts after the first
    ///   (a replacement for one that died) reseeds its environments from it, so that it does
    ///   not replay its predecessor's episodes.
    /// - Throws: `AgentError` for weights of the wrong size or an environment that cannot be built.
    distributed func sample(weights: ObjectRef<[Float]>, version: Int, iteration: Int, steps: Int) async throws -> SampledPart {
        guard steps > 0 else { throw AgentError("a rollout needs at least one step, not \(steps)") }
        let sampler = try self.sampler ?? spec.environment.ppoSampler(spec)
        self.sampler = sampler
        if iterationsSampled == 0 && iteration > 0 {
            sampler.reset(seed: spec.seed &+ UInt64(spec.index * spec.environments) &+ UInt64(iteration) &* 1_000_003)
        }
        if version != loadedVersion {
            try sampler.load(weights: try await weights.get())
            loadedVersion = version
        }
        iterationsSampled += 1
        return SampledPart(rollout: sampler.sample(steps: steps), location: location())
    }

    /// Where the runner lives: its node and process.
    distributed func location() -> RunnerLocation {
        RunnerLocation(node: ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "", pid: getpid())
    }
}

/// A rollout worker's node and process.
public struct RunnerLocation: Codable, Sendable, Equatable {
    public var node: String
    public var pid: Int32
}

/// A worker's part of a rollout, and where it was sampled (a new process means a replacement).
public struct SampledPart: Codable, Sendable {
    public var rollout: Rollout
    public var location: RunnerLocation
}

/// Steps environments with a policy loaded from published weights.
protocol RolloutSampler: AnyObject {
    func load(weights: [Float]) throws
    func sample(steps: Int) -> Rollout
    func reset(seed: UInt64)
}

/// A PPO policy's rollouts of a vector of environments.
final class PPOSampler<Base: Environment>: RolloutSampler {
    private var collector: RolloutCollector<Base>
    private var policy: PPOPolicy
    private var generator: SeededGenerator

    init(_ spec: EnvRunnerSpec, environments: VectorEnvironment<Base>) throws {
        guard case .box = environments.observationSpace else { throw AgentError("PPO needs box observations") }
        policy = try PPOPolicy(
            observationDimension: environments.observationDimension, actionSpace: environments.actionSpace,
            hidden: spec.hidden, activation: spec.activation, seed: spec.seed)
        generator = SeededGenerator(seed: spec.seed &+ 3 &+ UInt64(spec.index + 1) &* 0x9E37_79B9)
        collector = RolloutCollector(environments: environments, gamma: spec.gamma)
        collector.reset(seed: spec.seed &+ UInt64(spec.index * spec.environments))
    }

    func load(weights: [Float]) throws { try policy.load(flattened: weights) }

    func sample(steps: Int) -> Rollout {
        let policy = self.policy
        return collector.collect(
            steps: steps, policy: { policy.decide($0, using: &self.generator) }, value: { policy.values($0) })
    }

    func reset(seed: UInt64) { collector.reset(seed: seed) }
}
