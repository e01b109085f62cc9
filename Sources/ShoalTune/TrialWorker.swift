import Distributed
import Foundation
import Shoal

/// What a trial runs: a built-in trainable by name, or any program.
public enum TrialProgram: Codable, Sendable, Equatable {
    case builtIn(String)
    case command(String)
}

/// A trial as a worker starts it.
public struct TrialRequest: Codable, Sendable {
    public var trial: Int
    public var program: TrialProgram
    /// The configuration as one JSON object (values keep their JSON types on the way).
    public var config: String
    public var metric: String
    /// The experiment's folder: the trial works in `trial_<id>` inside it.
    public var folder: String
    /// Another trial's checkpoint to start from (PBT's exploit).
    public var checkpoint: [UInt8]?
    /// Seconds the trial may run from its start (nil: no limit).
    public var timeout: Double?
    /// Settings every trial of the search shares (`TrialContext.baseSettings`).
    public var baseSettings: String?
}

/// A cluster actor that runs trials one after another (Ray Tune's `reuse_actors`): each start
/// ends the trial it held and builds the next in the same process, so a search pays for one
/// process per concurrent trial, not one per trial.
public distributed actor TrialWorker {
    public typealias ActorSystem = ClusterActorSystem

    let trainables: [String: TrainableFactory]
    private var current: (any Trainable)?
    private var currentTrial = -1
    /// When the held trial must have finished (--trial-timeout), checked before each step: a
    /// built-in trainable's step is not interrupted, the trial ends at the next one.
    private var deadline: ContinuousClock.Instant?

    /// The actor type to register with `Shoal.bootstrap(tasks:actors:)`, knowing the built-in
    /// trainables of this binary by name.
    public static func actorType(trainables: [String: TrainableFactory]) -> ActorType<Int, TrialWorker> {
        ActorType("shoal.TrialWorker") { (_: Int, system) in TrialWorker(trainables: trainables, actorSystem: system) }
    }

    init(trainables: [String: TrainableFactory], actorSystem: ClusterActorSystem) {
        self.actorSystem = actorSystem
        self.trainables = trainables
    }

    /// Ends the trial held, starts `request`'s, and returns its first report.
    /// - Throws: `TuneError` for an unknown trainable, a program that cannot start, or a
    ///   failing first iteration.
    distributed func start(_ request: TrialRequest) async throws -> TrialReport {
        await end()
        let directory = request.folder + "/trial_\(request.trial)"
        let config: TrialConfig
        do {
            config = try JSONDecoder().decode(TrialConfig.self, from: Data(request.config.utf8))
        } catch {
            throw TuneError(
                "trial \(request.trial): its configuration is not a JSON object of values: \(request.config.prefix(200))")
        }
        let context = TrialContext(
            trial: request.trial, config: config, directory: directory, checkpointDirectory: directory + "/checkpoint",
            metric: request.metric, deadline: request.timeout.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) },
            baseSettings: request.baseSettings)
        let trainable: any Trainable
        switch request.program {
        case .command(let command):
            trainable = try CommandTrainable(command: command, context: context, checkpoint: request.checkpoint)
        case .builtIn(let name):
            guard let factory = trainables[name] else {
                throw TuneError("no built-in trainable '\(name)': \(trainables.keys.sorted().joined(separator: ", "))")
            }
            trainable = try await factory(context)
            if let checkpoint = request.checkpoint { try await trainable.restore(checkpoint) }
        }
        current = trainable
        currentTrial = request.trial
        deadline = context.deadline
        return try await step(request.trial)
    }

    /// The next report of trial `trial` (the one held).
    distributed func step(_ trial: Int) async throws -> TrialReport {
        guard let current, currentTrial == trial else { throw TuneError("this worker does not hold trial \(trial)") }
        if let deadline, ContinuousClock.now >= deadline {
            await end()
            throw TuneError("trial \(trial): ran past its time limit (--trial-timeout) and was stopped")
        }
        do {
            return try await current.step()
        } catch {
            await end()
            throw error
        }
    }

    /// Trial `trial`'s state now.
    distributed func save(_ trial: Int) async throws -> [UInt8] {
        guard let current, currentTrial == trial else { throw TuneError("this worker does not hold trial \(trial)") }
        return try await current.save()
    }

    /// Trial `trial`'s trained model (nil for a trainable without one).
    distributed func model(_ trial: Int) async throws -> TrialModel? {
        guard let current, currentTrial == trial else { throw TuneError("this worker does not hold trial \(trial)") }
        return try await current.model()
    }

    /// Ends the trial held (a pruned trial: at once).
    distributed func stop() async { await end() }

    private func end() async {
        await current?.stop()
        current = nil
        currentTrial = -1
        deadline = nil
    }
}
