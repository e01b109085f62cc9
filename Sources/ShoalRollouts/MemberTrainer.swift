import Distributed
import Foundation
import Shoal
import ShoalRL
import ShoalTensor

/// One ensemble member's training, as its actor is told it.
public struct MemberSpec: Codable, Sendable {
    public var algorithm: TradingAlgorithm
    public var market: TradingMarketSpec
    public var steps: Int
    public var seed: UInt64
    public var evaluationInterval: Int
    /// The member's own rollout workers (nil: its environment steps in its own process).
    public var runners: EnvRunnerOptions?

    public init(
        algorithm: TradingAlgorithm, market: TradingMarketSpec, steps: Int, seed: UInt64, evaluationInterval: Int,
        runners: EnvRunnerOptions? = nil
    ) {
        self.algorithm = algorithm
        self.market = market
        self.steps = steps
        self.seed = seed
        self.evaluationInterval = evaluationInterval
        self.runners = runners
    }
}

/// A trained member: its checkpoint and learning curve, and where and how long it trained.
public struct TrainedMember: Codable, Sendable {
    public var algorithm: TradingAlgorithm
    /// The agent's parameters as a safetensors file.
    public var checkpoint: [UInt8]
    public var curve: LearningCurve
    public var node: String
    public var pid: Int32
    public var seconds: Double
}

/// Trains one ensemble member on the trading environment's training span, in its own process,
/// evaluating on the validation span as it goes; several train at once, one actor each.
public distributed actor MemberTrainer {
    public typealias ActorSystem = ClusterActorSystem

    /// The actor type to register with `Shoal.bootstrap(tasks:actors:)`.
    public static let actorType = ActorType("shoal.MemberTrainer") { (threads: Int, system) in
        MemberTrainer(threads: threads, actorSystem: system)
    }

    private let threads: Int

    init(threads: Int, actorSystem: ClusterActorSystem) {
        self.actorSystem = actorSystem
        self.threads = threads
    }

    /// Trains the member of `spec`: in this process, or with rollout workers of its own, which
    /// this actor starts through a connection of its own to the cluster (a job of its own, so
    /// that they end with the training, or with this actor) and ends with the training.
    /// - Parameter encoder: the encoder's safetensors file, for hybrid features.
    /// - Throws: `AgentError` or `EnvironmentError` for a member that cannot be built, the
    ///   cluster's error when its workers cannot be placed.
    public distributed func train(_ spec: MemberSpec, encoder: ObjectRef<[UInt8]>?) async throws -> TrainedMember {
        Compute.setThreads(threads)
        let started = ContinuousClock.now
        var encoderBytes: [UInt8]?
        var weights: [String: Tensor]?
        if let encoder {
            let bytes = try await encoder.get()
            encoderBytes = bytes
            weights = try SafeTensors.decode(bytes, source: "the encoder").tensors
        }
        let market = try spec.market.build(encoderWeights: weights, seed: spec.seed)
        let run = TrainingRun(
            totalSteps: spec.steps, evaluationInterval: spec.evaluationInterval, evaluationEpisodes: 1,
            environmentName: "trading", seed: spec.seed, evaluationEnvironment: market.validation)
        let agent = try TradingAgents.make(
            spec.algorithm, market.train, seed: spec.seed, total: spec.steps,
            environments: spec.runners.map { $0.runners * $0.environmentsPerRunner })
        let curve: LearningCurve
        if let runners = spec.runners {
            curve = try await Self.onRunners(agent, run: run, spec: spec, options: runners, encoder: encoderBytes)
        } else {
            curve = run.run(agent)
        }
        return TrainedMember(
            algorithm: spec.algorithm,
            checkpoint: try SafeTensors.encode(agent.checkpoint(), metadata: ["format": "pt", "algorithm": agent.name]),
            curve: curve, node: ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "", pid: getpid(),
            seconds: (ContinuousClock.now - started).seconds)
    }

    /// The member's training with its own rollout workers.
    static func onRunners(
        _ agent: any Agent, run: TrainingRun<TradingEnvironment>, spec: MemberSpec, options: EnvRunnerOptions, encoder: [UInt8]?
    ) async throws -> LearningCurve {
        guard let head = ProcessInfo.processInfo.environment["SHOAL_HEAD_ADDRESS"] else {
            throw AgentError("a member with rollout workers runs on a cluster's executor (SHOAL_HEAD_ADDRESS is not set)")
        }
        let cluster = try await Cluster.connect(address: head, newJob: true)
        do {
            let policy: RunnerPolicy
            if let ppo = agent as? PPO<TradingEnvironment> {
                policy = .ppo(hidden: ppo.config.hidden, activation: ppo.config.activation)
            } else if let learner = agent as? any OffPolicyLearner {
                policy = .offPolicy(learner.acting)
            } else {
                throw AgentError("\(agent.name) does not learn from rollout workers")
            }
            let group = try await EnvRunnerGroup(
                cluster: cluster, environment: .trading(spec.market), seed: spec.seed,
                gamma: (agent as? PPO<TradingEnvironment>)?.config.gamma ?? 0.99, policy: policy, encoder: encoder,
                options: options)
            let curve: LearningCurve
            do {
                if let ppo = agent as? PPO<TradingEnvironment> {
                    curve = try await RolloutTraining.ppo(ppo, on: group, run: run)
                } else if let learner = agent as? any OffPolicyLearner {
                    curve = try await RolloutTraining.offPolicy(learner, on: group, run: run)
                } else {
                    curve = run.run(agent)
                }
            } catch {
                await group.shutdown()
                throw error
            }
            await group.shutdown()
            await cluster.shutdown()
            return curve
        } catch {
            await cluster.shutdown()
            throw error
        }
    }
}
