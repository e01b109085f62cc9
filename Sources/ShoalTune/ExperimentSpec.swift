import Foundation
import Shoal

/// Everything that defines a search, so that it can be stored and resumed: the trainable, the
/// space, the searcher and scheduler with their settings, and how trials run.
public struct ExperimentSpec: Codable, Sendable {
    public enum Search: String, Codable, Sendable, CaseIterable { case random, grid, tpe }
    public enum Scheduler: String, Codable, Sendable, CaseIterable { case fifo, asha, hyperband, median, pbt }

    public var name: String
    public var program: TrialProgram
    public var space: [String: Domain]
    public var search: Search = .random
    public var scheduler: Scheduler = .fifo
    public var samples = 10
    public var seed: UInt64 = 0
    public var metric: String
    public var mode: TuneOptions.Mode
    public var maxConcurrent = 2
    public var cpusPerTrial = 1.0
    public var maxFailures = 0
    public var trialTimeout: Double?
    public var baseSettings: String?
    /// ASHA and HyperBand: reports a trial may make, reports before the first rung, the factor.
    public var maxSteps = 100
    public var grace = 1
    public var reductionFactor = 4.0
    /// PBT: reports between exploit/explore steps.
    public var pbtInterval = 4
    /// The experiment's folder (trials' folders, results).
    public var folder: String
    /// Register the best trial's model under this name (built-in trainables with a model).
    public var register: String?
    public var alias: String?

    public init(name: String, program: TrialProgram, space: SearchSpace, metric: String, mode: TuneOptions.Mode, folder: String) {
        self.name = name
        self.program = program
        self.space = Dictionary(uniqueKeysWithValues: space.parameters.map { ($0.name, $0.domain) })
        self.metric = metric
        self.mode = mode
        self.folder = folder
    }

    /// The space, checked again (a stored spec may come from elsewhere).
    /// - Throws: `TuneError` naming a bad parameter.
    public func searchSpace() throws -> SearchSpace { try SearchSpace(space) }

    /// The searcher, fresh from the seed.
    /// - Throws: `TuneError` (grid search without a grid parameter).
    public func makeSearcher() throws -> any Searcher {
        let space = try searchSpace()
        switch search {
        case .random: return RandomSearch(space: space, samples: samples, seed: seed)
        case .grid: return try GridSearch(space: space, samples: samples, seed: seed)
        case .tpe: return TPESearch(space: space, samples: samples, seed: seed)
        }
    }

    /// Trials the search runs in all.
    public func plannedTrials() throws -> Int {
        search == .grid ? try GridSearch(space: try searchSpace(), samples: samples, seed: seed).count : samples
    }

    /// The scheduler, fresh from the seed.
    /// - Throws: `TuneError` for settings it cannot work with.
    public func makeScheduler() throws -> any TrialScheduler {
        switch scheduler {
        case .fifo: return FIFOScheduler()
        case .asha: return try ASHAScheduler(maxSteps: maxSteps, grace: grace, reductionFactor: reductionFactor)
        case .hyperband: return try ASHAScheduler.hyperBand(maxSteps: maxSteps, grace: grace, reductionFactor: reductionFactor)
        case .median: return MedianStoppingScheduler(grace: grace)
        case .pbt: return try PBTScheduler(space: try searchSpace(), interval: pbtInterval, seed: seed)
        }
    }

    /// How the tuner runs trials.
    public var options: TuneOptions {
        var options = TuneOptions(metric: metric, mode: mode, folder: folder)
        options.maxConcurrent = maxConcurrent
        options.cpusPerTrial = cpusPerTrial
        options.maxFailures = maxFailures
        options.trialTimeout = trialTimeout
        options.baseSettings = baseSettings
        if scheduler == .pbt { options.checkpointInterval = pbtInterval }
        options.keepBestModel = register != nil
        return options
    }
}

/// What happened in a search, in order: enough to rebuild its searcher, scheduler and trials
/// after its driver died.
public enum JournalEvent: Codable, Sendable, Equatable {
    /// The searcher gave trial `trial` this configuration.
    case started(trial: Int, config: TrialConfig)
    /// A report's value; the scheduler heard it unless it was the trial's last (`done`).
    case reported(trial: Int, step: Int, value: Double, pid: Int32, done: Bool)
    /// PBT: the trial took `donor`'s checkpoint with this configuration.
    case exploited(trial: Int, donor: Int, config: TrialConfig)
    /// The trial failed and starts again (its reports so far no longer count).
    case retried(trial: Int)
    /// The trial ended.
    case ended(trial: Int, state: TrialState, error: String?, failures: Int, seconds: Double)
}

/// A search's record in the head's key-value store (namespace `shoal.tune`): its spec, its
/// events one key each (`NAME/events/00000042`), and PBT's checkpoints. A driver killed
/// mid-search leaves it behind; `trading tune --resume NAME` carries on from it.
public actor ExperimentJournal {
    public static let namespace = "shoal.tune"
    let store: any JournalStore
    public let name: String

    public init(store: any JournalStore, name: String) {
        self.store = store
        self.name = name
    }

    /// Whether an experiment of this name was recorded.
    public func exists() async throws -> Bool { try await store.get(name + "/spec") != nil }

    public func save(_ spec: ExperimentSpec) async throws {
        try await store.put(try JSONEncoder().encode(spec).bytes, forKey: name + "/spec")
    }

    /// The stored spec and events (up to the first missing one: a write the driver did not live to finish).
    /// - Throws: `TuneError` when there is no such experiment or its record does not read.
    public func load() async throws -> (spec: ExperimentSpec, events: [JournalEvent]) {
        guard let bytes = try await store.get(name + "/spec") else {
            throw TuneError("no experiment '\(name)' on this cluster (an embedded cluster keeps none after its driver ends)")
        }
        let spec: ExperimentSpec
        do {
            spec = try JSONDecoder().decode(ExperimentSpec.self, from: Data(bytes))
        } catch {
            throw TuneError("experiment '\(name)': its spec does not read: \(error)")
        }
        var events: [JournalEvent] = []
        let keys = try await store.keys(prefix: name + "/events/")
        for (index, key) in keys.enumerated() {
            guard key == eventKey(index), let bytes = try await store.get(key) else { break }
            do {
                events.append(try JSONDecoder().decode(JournalEvent.self, from: Data(bytes)))
            } catch {
                throw TuneError("experiment '\(name)': event \(index) does not read: \(error)")
            }
        }
        return (spec, events)
    }

    /// Stores event number `index` (the writer numbers its events in the order they happened;
    /// `load` stops at the first number missing). Returns once it is stored.
    public func write(_ event: JournalEvent, at index: Int) async throws {
        try await store.put(try JSONEncoder().encode(event).bytes, forKey: eventKey(index))
    }

    public func saveCheckpoint(_ bytes: [UInt8], of trial: Int) async throws {
        try await store.put(bytes, forKey: name + "/checkpoints/\(trial)")
    }

    public func checkpoint(of trial: Int) async throws -> [UInt8]? {
        try await store.get(name + "/checkpoints/\(trial)")
    }

    private func eventKey(_ index: Int) -> String { name + "/events/" + String(format: "%08d", index) }
}

/// Where a journal keeps its keys: the head's key-value store (`Cluster.keyValues`).
public protocol JournalStore: Sendable {
    func put(_ value: [UInt8], forKey key: String) async throws
    func get(_ key: String) async throws -> [UInt8]?
    func keys(prefix: String) async throws -> [String]
}

extension Data {
    var bytes: [UInt8] { [UInt8](self) }
}

extension KeyValues: JournalStore {
    public func put(_ value: [UInt8], forKey key: String) async throws {
        try await put(value, forKey: key, in: ExperimentJournal.namespace)
    }

    public func get(_ key: String) async throws -> [UInt8]? { try await get(key, in: ExperimentJournal.namespace) }

    public func keys(prefix: String) async throws -> [String] {
        try await keys(in: ExperimentJournal.namespace, prefix: prefix)
    }
}
