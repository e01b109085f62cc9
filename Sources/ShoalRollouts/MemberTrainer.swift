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

    public init(algorithm: TradingAlgorithm, market: TradingMarketSpec, steps: Int, seed: UInt64, evaluationInterval: Int) {
        self.algorithm = algorithm
        self.market = market
        self.steps = steps
        self.seed = seed
        self.evaluationInterval = evaluationInterval
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

    /// Trains the member of `spec`.
    /// - Parameter encoder: the encoder's safetensors file, for hybrid features.
    /// - Throws: `AgentError` or `EnvironmentError` for a member that cannot be built.
    public distributed func train(_ spec: MemberSpec, encoder: ObjectRef<[UInt8]>?) async throws -> TrainedMember {
        Compute.setThreads(threads)
        let started = ContinuousClock.now
        var weights: [String: Tensor]?
        if let encoder { weights = try SafeTensors.decode(try await encoder.get(), source: "the encoder").tensors }
        let market = try spec.market.build(encoderWeights: weights, seed: spec.seed)
        let agent = try TradingAgents.make(spec.algorithm, market.train, seed: spec.seed, total: spec.steps)
        let curve = TrainingRun(
            totalSteps: spec.steps, evaluationInterval: spec.evaluationInterval, evaluationEpisodes: 1,
            environmentName: "trading", seed: spec.seed, evaluationEnvironment: market.validation
        ).run(agent)
        return TrainedMember(
            algorithm: spec.algorithm,
            checkpoint: try SafeTensors.encode(agent.checkpoint(), metadata: ["format": "pt", "algorithm": agent.name]),
            curve: curve, node: ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "", pid: getpid(),
            seconds: (ContinuousClock.now - started).seconds)
    }
}
