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
    /// The discount, to bootstrap truncated episodes in on-policy rollouts.
    public var gamma: Float
    public var policy: RunnerPolicy
    /// Threads for the runner's computation (ShoalTensor's loops and OpenBLAS): its CPUs.
    public var threads: Int

    public init(
        index: Int, environment: RolloutEnvironment, environments: Int, seed: UInt64, gamma: Float, policy: RunnerPolicy,
        threads: Int = 1
    ) {
        self.threads = threads
        self.index = index
        self.environment = environment
        self.environments = environments
        self.seed = seed
        self.gamma = gamma
        self.policy = policy
    }
}

/// The policy a runner acts with, by shape; its weights come with each call.
public enum RunnerPolicy: Codable, Sendable {
    /// PPO's networks: on-policy rollouts.
    case ppo(hidden: [Int], activation: MLP.Activation)
    /// An off-policy learner's acting network (SAC's or TD3's actor, Rainbow's online
    /// network): transitions.
    case offPolicy(OffPolicyActor)
}

/// A rollout worker: steps its vector of environments with the policy whose weights it is
/// handed by reference, and returns what happened. Its environments carry on from one call to
/// the next (episodes span rollouts, as in one process).
public distributed actor EnvRunner {
    public typealias ActorSystem = ClusterActorSystem

    let spec: EnvRunnerSpec
    private var sampler: (any RolloutSampler)?
    private var collector: (any TransitionSampler)?
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
    /// - Parameters:
    ///   - iteration: the learner's iteration; a runner that starts after the first (a
    ///     replacement for one that died) reseeds its environments from it, so that it does not
    ///     replay its predecessor's episodes.
    ///   - encoder: the encoder's safetensors file, for an environment with hybrid features
    ///     (read once, when the environments are built).
    /// - Throws: `AgentError` for weights of the wrong size or an environment that cannot be built.
    distributed func sample(
        weights: ObjectRef<[Float]>, version: Int, iteration: Int, steps: Int, encoder: ObjectRef<[UInt8]>?
    ) async throws -> SampledPart {
        let started = ContinuousClock.now
        guard steps > 0 else { throw AgentError("a rollout needs at least one step, not \(steps)") }
        guard case .ppo(let hidden, let activation) = spec.policy else {
            throw AgentError("this runner acts for an off-policy learner: ask it for transitions")
        }
        if sampler == nil { Compute.setThreads(spec.threads) }
        let sampler: any RolloutSampler
        if let built = self.sampler {
            sampler = built
        } else {
            sampler = try spec.environment.ppoSampler(
                spec, hidden: hidden, activation: activation, encoder: try await Self.encoderWeights(encoder))
        }
        self.sampler = sampler
        try await prepare(sampler, weights: weights, version: version, iteration: iteration)
        let rollout = sampler.sample(steps: steps)
        return SampledPart(rollout: rollout, location: location(), seconds: (ContinuousClock.now - started).seconds)
    }

    /// `steps` steps of every environment for an off-policy learner, with the acting network
    /// of update `version`, as transitions.
    /// - Parameter exploration: the chance of a uniformly random action in place of the
    ///   policy's (`OffPolicyLearner.exploration(atStep:)`; SAC's and TD3's actors take only 1,
    ///   all random, or else their own noise).
    /// - Throws: `AgentError` for weights of the wrong size or an environment whose actions the
    ///   network cannot take.
    distributed func collect(
        weights: ObjectRef<[Float]>, version: Int, iteration: Int, steps: Int, exploration: Float, encoder: ObjectRef<[UInt8]>?
    ) async throws -> SampledTransitions {
        let started = ContinuousClock.now
        guard steps > 0 else { throw AgentError("a collection needs at least one step, not \(steps)") }
        guard (0...1).contains(exploration) else { throw AgentError("exploration must be in [0, 1], not \(exploration)") }
        guard case .offPolicy(let acting) = spec.policy else {
            throw AgentError("this runner acts for PPO: ask it for rollouts")
        }
        if collector == nil { Compute.setThreads(spec.threads) }
        let collector: any TransitionSampler
        if let built = self.collector {
            collector = built
        } else {
            collector = try spec.environment.transitionSampler(
                spec, acting: acting, encoder: try await Self.encoderWeights(encoder))
        }
        self.collector = collector
        try await prepare(collector, weights: weights, version: version, iteration: iteration)
        let transitions = collector.collect(steps: steps, exploration: exploration)
        return SampledTransitions(
            transitions: transitions, location: location(), seconds: (ContinuousClock.now - started).seconds)
    }

    /// The encoder's parameters from its safetensors file in the object store.
    private static func encoderWeights(_ encoder: ObjectRef<[UInt8]>?) async throws -> [String: Tensor]? {
        guard let encoder else { return nil }
        return try SafeTensors.decode(try await encoder.get(), source: "the encoder").tensors
    }

    /// Reseeds a replacement's environments and loads newer weights.
    private func prepare(_ sampler: any WeightedSampler, weights: ObjectRef<[Float]>, version: Int, iteration: Int) async throws {
        if iterationsSampled == 0 && iteration > 0 {
            sampler.reset(seed: spec.seed &+ UInt64(spec.index * spec.environments) &+ UInt64(iteration) &* 1_000_003)
        }
        if version != loadedVersion {
            try sampler.load(weights: try await weights.get())
            loadedVersion = version
        }
        iterationsSampled += 1
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
    /// The runner's own time on the call: reading newer weights and stepping its environments.
    public var seconds: Double
}

/// A worker's transitions, and where they were sampled.
public struct SampledTransitions: Codable, Sendable {
    public var transitions: Transitions
    public var location: RunnerLocation
    /// The runner's own time on the call.
    public var seconds: Double
}

/// Steps environments with a policy loaded from published weights.
protocol WeightedSampler: AnyObject {
    func load(weights: [Float]) throws
    func reset(seed: UInt64)
}

/// On-policy rollouts.
protocol RolloutSampler: WeightedSampler {
    func sample(steps: Int) -> Rollout
}

/// Off-policy transitions.
protocol TransitionSampler: WeightedSampler {
    func collect(steps: Int, exploration: Float) -> Transitions
}

/// A PPO policy's rollouts of a vector of environments.
final class PPOSampler<Base: Environment>: RolloutSampler {
    private var collector: RolloutCollector<Base>
    private var policy: PPOPolicy
    private var generator: SeededGenerator

    init(_ spec: EnvRunnerSpec, environments: VectorEnvironment<Base>, hidden: [Int], activation: MLP.Activation) throws {
        guard case .box = environments.observationSpace else { throw AgentError("PPO needs box observations") }
        policy = try PPOPolicy(
            observationDimension: environments.observationDimension, actionSpace: environments.actionSpace,
            hidden: hidden, activation: activation, seed: spec.seed)
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

/// An off-policy actor's transitions of several environments.
final class ActorSampler<Base: Environment>: TransitionSampler {
    private var collector: TransitionCollector<Base>
    private var actor: ContinuousActor
    private var generator: SeededGenerator

    init(_ spec: EnvRunnerSpec, kind: ContinuousActor.Kind, hidden: [Int], make: (Int) -> Base) throws {
        collector = try TransitionCollector(
            count: spec.environments, seed: spec.seed &+ UInt64(spec.index * spec.environments),
            firstStream: spec.index * spec.environments, make: make)
        actor = try ContinuousActor(
            kind: kind, observationDimension: collector.observationDimension, actionDimension: collector.actionDimension,
            hidden: hidden)
        generator = SeededGenerator(seed: spec.seed &+ 31 &+ UInt64(spec.index + 1) &* 0x9E37_79B9)
    }

    func load(weights: [Float]) throws { try actor.load(flattened: weights) }

    func collect(steps: Int, exploration: Float) -> Transitions {
        let actor = self.actor
        let random = exploration >= 1
        return collector.collect(steps: steps) { actor.act($0, random: random, using: &self.generator) }
    }

    func reset(seed: UInt64) { collector.reset(seed: seed) }
}

/// A Q-learner's (Rainbow's, DQN's) transitions of several environments with discrete actions.
final class QSampler<Base: Environment>: TransitionSampler {
    private var collector: TransitionCollector<Base>
    private var actor: QActor
    private var generator: SeededGenerator

    init(_ spec: EnvRunnerSpec, shape: QActor.Shape, make: (Int) -> Base) throws {
        collector = try TransitionCollector(
            count: spec.environments, seed: spec.seed &+ UInt64(spec.index * spec.environments),
            firstStream: spec.index * spec.environments, discrete: true, make: make)
        guard collector.observationDimension == shape.inputs else {
            throw AgentError(
                "the environment's observations have \(collector.observationDimension) values, the network takes \(shape.inputs)")
        }
        actor = try QActor(shape: shape)
        generator = SeededGenerator(seed: spec.seed &+ 37 &+ UInt64(spec.index + 1) &* 0x9E37_79B9)
    }

    func load(weights: [Float]) throws { try actor.load(flattened: weights) }

    func collect(steps: Int, exploration: Float) -> Transitions {
        collector.collect(steps: steps) { self.actor.act($0, epsilon: exploration, using: &self.generator) }
    }

    func reset(seed: UInt64) { collector.reset(seed: seed) }
}
