import Distributed
import Foundation
import Shoal
import ShoalTensor
import Synchronization

/// What a data-parallel worker is built with.
public struct WorkerSpec: Codable, Sendable {
    public var rank: Int
    public var size: Int
    public var config: TrainingConfig
    /// Names the group's shared-memory segment and tells one restart of the group from another.
    public var groupID: String
    /// Rank 0 writes checkpoints here; every rank of a restarted group resumes from it.
    public var checkpointFolder: String?
    public var collective: CollectiveKind
    /// Threads for the worker's own computation (ShoalTensor's loops and OpenBLAS).
    public var threads: Int
}

/// Which all-reduce a group uses.
public enum CollectiveKind: String, Codable, Sendable, CaseIterable {
    /// Shared memory when every rank is on one machine, else the ring.
    case automatic
    case sharedMemory = "shm"
    case ring
}

/// One segment of a worker's training, as the trainer hears of it.
public struct WorkerProgress: Codable, Sendable {
    public var step: Int
    public var finished: Bool
    public var stoppedEarly: Bool
    public var bestEpoch: Int
    /// The last step's report in the segment.
    public var lastStep: StepReport?
    /// Epochs that ended in the segment.
    public var epochs: [EpochRecord]
    /// The whole learning curve so far.
    public var history: [EpochRecord]
    /// Checkpoints written in the segment.
    public var checkpoints: [String]
    /// The SHA-256 of the worker's parameters after the segment: every rank's must be the same.
    public var parameterHash: String
    /// The collective in use (`shm` or `ring`).
    public var collective: String
    public var node: String
    public var pid: Int32
}

/// A data-parallel worker of the hybrid model's training: one rank's `TrainingLoop`, its data
/// read from the object store, its gradients averaged with the other ranks' through a
/// `Collective` at every step. Its computation runs on a thread of its own, not on the actor
/// system's pool, so that several workers in one executor process never wait on each other.
public distributed actor TrainingWorker {
    public typealias ActorSystem = ClusterActorSystem

    let spec: WorkerSpec
    private var loop: TrainingLoop?
    private var ring: RingCollective?
    private var collective: (any Collective)?
    private let abortFlag = AbortFlag()

    /// The actor type to register with `Shoal.bootstrap(tasks:actors:)`.
    public static let actorType = ActorType("shoal.TrainingWorker") { (spec: WorkerSpec, system) in
        TrainingWorker(spec: spec, actorSystem: system)
    }

    init(spec: WorkerSpec, actorSystem: ClusterActorSystem) {
        self.actorSystem = actorSystem
        self.spec = spec
    }

    /// Reads the data, builds (or resumes) the loop and opens this rank's end of the collective.
    /// - Parameter resumeFrom: a checkpoint folder to resume from (the same for every rank).
    /// - Returns: where the other ranks reach this one.
    /// - Parameter initialWeights: weights to start from (fine-tuning), laid end to end in
    ///   `parameterNames` order; nil starts from the seed's.
    distributed func prepare(
        data: ObjectRef<HybridDataset>, initialWeights: ObjectRef<[Float]>?, resumeFrom: String?
    ) async throws -> CollectiveEndpoint {
        let dataset = try await data.get()
        let initial = try await initialWeights?.get()
        let spec = self.spec
        Compute.setThreads(spec.threads)
        let loop = try await Self.onOwnThread {
            if let resumeFrom { return try TrainingLoop(resumingFrom: resumeFrom, dataset: dataset) }
            guard let initial else { return try TrainingLoop(config: spec.config, dataset: dataset) }
            let template = try TrainingLoop(config: spec.config, dataset: dataset)
            return try TrainingLoop(
                config: spec.config, dataset: dataset, initialWeights: try template.unflatten(initial))
        }
        guard loop.config.batchSize % spec.size == 0 else {
            throw TrainingError("a batch of \(loop.config.batchSize) does not split evenly into \(spec.size) workers")
        }
        self.loop = loop
        let host = ProcessInfo.processInfo.environment["SHOAL_EXECUTOR_HOST"] ?? "127.0.0.1"
        let ring = try RingCollective(rank: spec.rank, size: spec.size, count: loop.parameterCount + 1, host: host)
        self.ring = ring
        return CollectiveEndpoint(rank: spec.rank, host: CollectiveEndpoint.thisHost, address: ring.endpoint, pid: getpid())
    }

    /// Joins the group: shared memory when every rank shares this machine (and the spec allows),
    /// else the ring.
    distributed func connect(peers: [CollectiveEndpoint]) async throws -> String {
        guard let loop, let ring else { throw TrainingError("connect before prepare") }
        let sameHost = Set(peers.map(\.host)).count == 1
        switch spec.collective {
        case .sharedMemory where !sameHost:
            throw TrainingError("the shared-memory collective needs every worker on one machine")
        case .sharedMemory, .automatic where sameHost:
            let shared = try SharedMemoryCollective(
                name: "shoal-collective-\(spec.groupID)", rank: spec.rank, size: spec.size, count: loop.parameterCount + 1)
            // Reachable by `abort` from here on: a peer that fails before this barrier must not
            // leave the others waiting out the deadline.
            collective = shared
            if abortFlag.isSet { shared.abort() }
            // Every rank has mapped the segment once all pass this barrier; then its name can go
            // (every rank removes it, so that it goes even when rank 0 does not get that far).
            defer { shared.unlink() }
            try await Self.onOwnThread { try shared.barrierWait() }
            ring.close()
            self.ring = nil
            collective = shared
            return "shm"
        default:
            try ring.connect(peers: peers)
            collective = ring
            return "ring"
        }
    }

    /// Trains until `step` steps in all (or the run's end).
    distributed func run(until step: Int) async throws -> WorkerProgress {
        guard let start = loop, let collective else { throw TrainingError("run before connect") }
        self.loop = nil
        let spec = self.spec
        let abortFlag = self.abortFlag
        let keep = start.config.keepCheckpoints
        let checkpoints = try spec.rank == 0 ? spec.checkpointFolder.map { try CheckpointFolder(path: $0, keep: keep) } : nil
        let (trained, progress) = try await Self.onOwnThread { () throws -> (TrainingLoop, WorkerProgress) in
            var loop = start
            var last: StepReport?
            var epochs: [EpochRecord] = []
            var written: [String] = []
            try loop.run(
                stopAfter: step, checkpoints: checkpoints, checkpointAtStop: false,
                stopRequested: { abortFlag.isSet }, shard: Shard(rank: spec.rank, size: spec.size),
                reduce: { buffer in try collective.allReduceMean(buffer) },
                observer: { event in
                    switch event {
                    case .step(let report): last = report
                    case .epoch(let record): epochs.append(record)
                    case .checkpoint(let path): written.append(path)
                    case .stoppedEarly: break
                    }
                })
            if abortFlag.isSet { throw TrainingError("worker \(spec.rank) was aborted") }
            return (
                loop,
                WorkerProgress(
                    step: loop.state.step, finished: loop.state.finished, stoppedEarly: loop.state.stoppedEarly,
                    bestEpoch: loop.state.bestEpoch, lastStep: last, epochs: epochs, history: loop.state.history,
                    checkpoints: written, parameterHash: loop.flattened(loop.parameters).withUnsafeBytes(ContentDigest.sha256(of:)),
                    collective: collective is SharedMemoryCollective ? "shm" : "ring",
                    node: ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? "", pid: getpid())
            )
        }
        self.loop = trained
        return progress
    }

    /// The run's result: the best validation epoch's weights (the current ones before any
    /// evaluation), laid end to end in `parameterNames` order.
    distributed func result() async throws -> [Float] {
        guard let loop else { throw TrainingError("no training on this worker") }
        return loop.flattened(loop.bestParameters ?? loop.parameters)
    }

    /// Fails this rank's waits and stops its training at the next step.
    distributed func abort() {
        abortFlag.set()
        collective?.abort()
        ring?.abort()
    }

    /// The process this worker runs in.
    distributed func processID() -> Int32 { getpid() }

    /// Runs `body` on a new thread and waits for it without holding a thread of the pool.
    static func onOwnThread<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Swift.Result { try body() }) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }
}

/// A flag set from one thread and read on another.
final class AbortFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
