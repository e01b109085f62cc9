import Distributed
import Foundation
import Shoal
import ShoalTensor

/// How a `Trainer` lays its workers on the cluster.
public struct TrainerOptions: Sendable {
    /// Data-parallel workers; the batch is split evenly among them.
    public var workers = 1
    /// How the workers' placement group spreads them over nodes.
    public var placement: PlacementGroup.Strategy = .pack
    public var cpusPerWorker = 1
    public var gpusPerWorker = 0
    /// Times the group is restarted from the last checkpoint after a worker fails (Ray Train's
    /// `FailureConfig(max_failures)`).
    public var maxFailures = 3
    /// Where rank 0 writes checkpoints and a restarted group resumes from; every worker must
    /// reach it (a shared file system when the nodes are several machines).
    public var checkpointFolder: String
    public var collective: CollectiveKind = .automatic
    /// Steps between the trainer's looks at its workers (progress, parameter hashes).
    public var stepsPerSegment = 10
    /// A checkpoint (one `checkpoint-…` folder) to go on from instead of starting afresh.
    public var resumeFrom: String?
    /// Weights to start from instead of the seed's (fine-tuning), by `state_dict()` name.
    public var initialWeights: [String: Tensor]?

    public init(checkpointFolder: String) { self.checkpointFolder = checkpointFolder }
}

/// What a trainer tells whoever watches it.
public enum TrainerEvent: Sendable {
    /// The group of workers is up: each rank's node and process, and the collective they use.
    case started(attempt: Int, nodes: [String], pids: [Int32], collective: String, fromStep: Int)
    case training(TrainingEvent)
    /// A worker failed; the group restarts from the checkpoint at `resumeStep` (nil: from the start).
    case workerFailed(attempt: Int, reason: String, atStep: Int, resumeStep: Int?)
}

/// A finished data-parallel run.
public struct TrainerResult: Sendable {
    /// The best validation epoch's weights, by `state_dict()` name.
    public var weights: [String: Tensor]
    public var history: [EpochRecord]
    public var steps: Int
    public var bestEpoch: Int
    public var stoppedEarly: Bool
    /// Times the group was restarted after a failure.
    public var restarts: Int
}

/// Data-parallel training of the hybrid model on the cluster (Ray Train's `TorchTrainer` with
/// DDP): N `TrainingWorker` actors in one placement group, the data put into the object store
/// once and read by every worker there, the same initial weights on every rank, the gradients
/// averaged at every step by a collective that moves them from worker to worker. The trainer
/// only steers: it starts the group, hands out the ranks' endpoints, runs the training in
/// segments, compares the ranks' parameter hashes after each, and restarts the group from the
/// last checkpoint when a worker fails.
public final class Trainer: Sendable {
    public let cluster: Cluster
    public let config: TrainingConfig
    public let dataset: HybridDataset
    public let options: TrainerOptions

    /// - Throws: `TrainingError` for options that can never work.
    public init(cluster: Cluster, config: TrainingConfig, dataset: HybridDataset, options: TrainerOptions) throws {
        guard options.workers >= 1, options.cpusPerWorker >= 1, options.gpusPerWorker >= 0, options.maxFailures >= 0,
            options.stepsPerSegment >= 1
        else {
            throw TrainingError("workers and CPUs per worker must be at least 1, GPUs and failures not negative")
        }
        guard config.batchSize % options.workers == 0 else {
            throw TrainingError("a batch of \(config.batchSize) does not split evenly into \(options.workers) workers")
        }
        self.cluster = cluster
        self.config = config
        self.dataset = dataset
        self.options = options
    }

    /// Trains to the end (the run's steps, or early stopping).
    /// - Throws: `TrainingError` when the group cannot be placed, a worker failed more than
    ///   `maxFailures` times, or the ranks' parameters disagree.
    public func fit(observer: @escaping @Sendable (TrainerEvent) -> Void = { _ in }) async throws -> TrainerResult {
        let data = try await cluster.put(dataset)
        let folder = try CheckpointFolder(path: options.checkpointFolder, keep: config.keepCheckpoints)
        // A loop here gives the parameter names and the run's length, and checks the configuration.
        let plan = try TrainingLoop(config: config, dataset: dataset, initialWeights: options.initialWeights)
        let initial = options.initialWeights == nil ? nil : try await cluster.put(plan.flattened(plan.parameters))
        var failures = 0
        // After a failure the group resumes from the newest checkpoint this run wrote (or the one
        // it was asked to resume from), never from another run's left in the folder.
        var resume = options.resumeFrom
        if let resume, !FileManager.default.fileExists(atPath: "\(resume)/state.json") {
            throw TrainingError("nothing to resume: \(resume) is not a checkpoint (it has no state.json)")
        }
        while true {
            let attempt = failures + 1
            let groupID = UUID().uuidString.lowercased()
            let bundle = Resources(cpu: Double(options.cpusPerWorker), gpu: Double(options.gpusPerWorker))
            let group: PlacementGroup
            do {
                group = try await cluster.placementGroup(Array(repeating: bundle, count: options.workers), strategy: options.placement)
            } catch {
                throw TrainingError(
                    "cannot reserve \(options.workers) worker(s) of \(options.cpusPerWorker) CPU(s)"
                        + (options.gpusPerWorker > 0 ? " and \(options.gpusPerWorker) GPU(s)" : "") + ": \(error)")
            }
            var workers: [TrainingWorker] = []
            var reached = 0
            do {
                for rank in 0..<options.workers {
                    let spec = WorkerSpec(
                        rank: rank, size: options.workers, config: config, groupID: groupID,
                        checkpointFolder: folder.path, collective: options.collective, threads: options.cpusPerWorker)
                    workers.append(
                        try await cluster.spawn(
                            TrainingWorker.actorType, spec,
                            options: ActorOptions(resources: bundle, maxConcurrency: 2, strategy: group.bundle(rank))))
                }
                let from = resume
                let endpoints = try await Self.onEvery(workers) { try await $0.prepare(data: data, initialWeights: initial, resumeFrom: from) }
                let kinds = try await Self.onEvery(workers) { try await $0.connect(peers: endpoints) }
                var step = resume.flatMap(CheckpointFolder.step(of:)) ?? 0
                reached = step
                var announced = false
                var progress: [WorkerProgress] = []
                repeat {
                    // The first segment is one step: the first finished step shows at once.
                    let target = min(plan.totalSteps, step + (announced ? options.stepsPerSegment : 1))
                    progress = try await Self.onEvery(workers) { try await $0.run(until: target) }
                    if !announced {
                        observer(
                            .started(
                                attempt: attempt, nodes: progress.map(\.node), pids: progress.map(\.pid),
                                collective: kinds.first ?? "", fromStep: step))
                        announced = true
                    }
                    let hashes = Set(progress.map(\.parameterHash))
                    guard hashes.count == 1 else {
                        throw ParameterMismatch(step: progress[0].step, hashes: progress.map(\.parameterHash))
                    }
                    let lead = progress[0]
                    for epoch in lead.epochs { observer(.training(.epoch(epoch))) }
                    if let report = lead.lastStep { observer(.training(.step(report))) }
                    for path in lead.checkpoints { observer(.training(.checkpoint(path: path))) }
                    if let newest = lead.checkpoints.last { resume = newest }
                    guard lead.step > step || lead.finished else {
                        throw NoProgress(step: lead.step, target: target)
                    }
                    step = lead.step
                    reached = step
                } while !progress[0].finished
                let lead = progress[0]
                if lead.stoppedEarly {
                    observer(.training(.stoppedEarly(epoch: lead.history.last?.epoch ?? 0, bestEpoch: lead.bestEpoch)))
                }
                let weights = try plan.unflatten(try await workers[0].result())
                await stop(workers, group: group)
                return TrainerResult(
                    weights: weights, history: lead.history, steps: lead.step, bestEpoch: lead.bestEpoch,
                    stoppedEarly: lead.stoppedEarly, restarts: failures)
            } catch let mismatch as ParameterMismatch {
                await stop(workers, group: group)
                throw TrainingError(
                    "the workers' parameters differ after step \(mismatch.step) (hashes \(mismatch.hashes.joined(separator: ", ")))")
            } catch let stuck as NoProgress {
                await stop(workers, group: group)
                throw TrainingError("the workers made no progress past step \(stuck.step) towards step \(stuck.target)")
            } catch {
                await stop(workers, group: group)
                failures += 1
                let resumeStep = resume.flatMap(CheckpointFolder.step(of:)) ?? 0
                observer(
                    .workerFailed(
                        attempt: attempt, reason: "\(error)", atStep: reached, resumeStep: resume == nil ? nil : resumeStep))
                guard failures <= options.maxFailures else {
                    throw TrainingError("a worker failed \(failures) times (maxFailures \(options.maxFailures)); the last: \(error)")
                }
            }
        }
    }

    /// Ends a group: aborts its workers' waits, kills them, frees the reservation.
    private func stop(_ workers: [TrainingWorker], group: PlacementGroup) async {
        await withTaskGroup(of: Void.self) { tasks in
            for worker in workers {
                tasks.addTask { try? await worker.abort() }
            }
        }
        for worker in workers { try? await cluster.kill(worker) }
        try? await cluster.remove(group)
    }

    /// Calls every worker at once; the results in rank order. The first failure aborts the
    /// others' waits (a dead peer leaves them blocked in the collective) and is thrown.
    static func onEvery<Result: Sendable>(
        _ workers: [TrainingWorker], _ call: @escaping @Sendable (TrainingWorker) async throws -> Result
    ) async throws -> [Result] {
        try await withThrowingTaskGroup(of: (Int, Result).self) { tasks in
            for (rank, worker) in workers.enumerated() {
                tasks.addTask { (rank, try await call(worker)) }
            }
            var results = [Result?](repeating: nil, count: workers.count)
            do {
                for try await (rank, result) in tasks { results[rank] = result }
            } catch {
                for worker in workers { Task { try? await worker.abort() } }
                while (try? await tasks.next()) != nil {}
                throw error
            }
            return results.compactMap { $0 }
        }
    }
}

/// A segment ended without a step taken: retrying would loop for ever.
struct NoProgress: Error {
    var step: Int
    var target: Int
}

/// The ranks' parameters differ: an error in the code, not a failure to retry.
struct ParameterMismatch: Error {
    var step: Int
    var hashes: [String]
}
