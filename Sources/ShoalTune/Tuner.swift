import Foundation
import Shoal

/// How a search runs.
public struct TuneOptions: Sendable {
    public enum Mode: String, Sendable, Codable { case min, max }

    /// The metric every report carries, and whether lower or higher is better.
    public var metric: String
    public var mode: Mode
    /// Trials at once: one trial worker (a process of its own) each.
    public var maxConcurrent = 2
    public var cpusPerTrial = 1.0
    /// Times a failing trial is started again before it counts as ERROR.
    public var maxFailures = 0
    /// Seconds a trial may run (for commands: stopped past it).
    public var trialTimeout: Double?
    /// The experiment's folder: trials work in `trial_<id>` inside it.
    public var folder: String
    /// Save each trial's checkpoint every this many reports (PBT's interval; nil: never).
    public var checkpointInterval: Int?
    /// Settings every trial shares (a JSON object built-in trainables lay the configuration over).
    public var baseSettings: String?
    /// Keep the model of the best finished trial (`TuneResult.bestModel`), for the registry.
    public var keepBestModel = false

    public init(metric: String, mode: Mode, folder: String) {
        self.metric = metric
        self.mode = mode
        self.folder = folder
    }
}

/// Where a trial stands (Ray Tune's names).
public enum TrialState: String, Codable, Sendable {
    case running = "RUNNING"
    case terminated = "TERMINATED"
    case pruned = "PRUNED"
    case error = "ERROR"
}

/// A trial's configuration, state and reported values.
public struct TrialRecord: Codable, Sendable {
    public var trial: Int
    public var config: TrialConfig
    public var state: TrialState
    /// The metric in its last report.
    public var value: Double?
    /// The metric, report by report.
    public var curve: [Double] = []
    public var error: String?
    public var failures = 0
    /// Times it took another trial's checkpoint (PBT).
    public var exploits = 0
    /// The processes that ran it.
    public var pids: [Int32] = []
    public var seconds = 0.0

    /// Reports made.
    public var steps: Int { curve.count }
}

/// What a search tells whoever watches it.
public enum TuneEvent: Sendable {
    case started(workers: Int)
    case trialEnded(TrialRecord)
    /// Counts after any change: running, finished, pruned, failed, and the best so far.
    case progress(running: Int, finished: Int, pruned: Int, failed: Int, best: TrialRecord?)
}

/// The outcome of a search.
public struct TuneResult: Sendable {
    public var trials: [TrialRecord]
    public var best: TrialRecord?
    /// The best finished trial's model, with `keepBestModel` (its trial and the model).
    public var bestModel: (trial: Int, model: TrialModel)?
    public var seconds: Double
    /// Distinct processes that ran trials.
    public var processes: Int
}

/// Runs a search on the cluster: `maxConcurrent` trial workers, each running trial after
/// trial; the searcher picks each configuration, the scheduler reads each report and may end
/// a trial at once (its worker takes the next) or, for PBT, restart it from another's
/// checkpoint. A failing trial is started again up to `maxFailures` times.
public actor Tuner {
    let cluster: Cluster
    let program: TrialProgram
    let options: TuneOptions
    var searcher: any Searcher
    var scheduler: any TrialScheduler
    let observer: @Sendable (TuneEvent) -> Void
    var records: [TrialRecord] = []
    var checkpoints: [Int: [UInt8]] = [:]
    var exhausted = false
    /// Where the search's events go as they happen (nil: nowhere, as on an embedded cluster).
    let journal: ExperimentJournal?
    /// Trials a resumed search runs again first: those its dead driver left running.
    var rerun: [Int] = []
    /// The first error writing the journal: the search stops starting trials.
    var journalError: (any Error)?
    /// The next event's number: events are numbered as they happen, in this actor's order.
    var journalSequence = 0
    /// Trials by state, and the best ended trial, kept as trials start and end (the progress
    /// line must not cost a pass over every trial).
    var tally: [TrialState: Int] = [:]
    var bestEnded: Int?
    /// The model of the best trial finished so far, with `keepBestModel`.
    var bestModel: (trial: Int, model: TrialModel)?

    /// - Parameter journal: records every event, so that `restore(_:)` can carry the search on
    ///   after this driver dies.
    public init(
        cluster: Cluster, program: TrialProgram, searcher: any Searcher, scheduler: any TrialScheduler, options: TuneOptions,
        journal: ExperimentJournal? = nil, observer: @escaping @Sendable (TuneEvent) -> Void = { _ in }
    ) throws {
        guard options.maxConcurrent >= 1, options.cpusPerTrial > 0, options.maxFailures >= 0 else {
            throw TuneError("a search needs at least one trial at a time, positive CPUs per trial and failures not negative")
        }
        if let timeout = options.trialTimeout, !(timeout > 0) { throw TuneError("--trial-timeout must be positive") }
        self.cluster = cluster
        self.program = program
        self.options = options
        self.searcher = searcher
        self.scheduler = scheduler
        self.journal = journal
        self.observer = observer
    }

    /// Replays a journal's events onto the fresh searcher and scheduler (the same seed gives
    /// the same decisions): finished trials are restored as they ended, trials left running
    /// are run again from their start, and the search goes on from there.
    /// - Throws: `TuneError` when the events do not match the searcher's own choices (the
    ///   space or seed changed) or name unknown trials.
    public func restore(_ events: [JournalEvent]) async throws {
        let ended = Set(
            events.compactMap { event -> Int? in if case .ended(let trial, _, _, _, _) = event { trial } else { nil } })
        func known(_ trial: Int) throws {
            guard records.indices.contains(trial) else { throw TuneError("the journal names trial \(trial) before it started") }
        }
        for event in events {
            switch event {
            case .started(let trial, let config):
                guard trial == records.count, searcher.suggest(trial) == config else {
                    throw TuneError(
                        "trial \(trial)'s configuration is not the searcher's own: the experiment cannot be resumed as it was")
                }
                records.append(TrialRecord(trial: trial, config: config, state: .running))
            case .reported(let trial, let step, let value, let pid, let done):
                try known(trial)
                // An unfinished trial starts again: the scheduler hears its reports anew.
                guard ended.contains(trial) else { continue }
                records[trial].curve.append(value)
                records[trial].value = value
                if !records[trial].pids.contains(pid) { records[trial].pids.append(pid) }
                if !done { _ = scheduler.report(trial, step: step, score: score(value), config: records[trial].config) }
            case .exploited(let trial, _, let config):
                try known(trial)
                records[trial].config = config
                records[trial].exploits += 1
            case .retried(let trial):
                try known(trial)
                records[trial].curve = []
            case .ended(let trial, let state, let error, let failures, let seconds):
                try known(trial)
                records[trial].state = state
                records[trial].error = error
                records[trial].failures = failures
                records[trial].seconds = seconds
                scheduler.complete(trial)
                searcher.observe(
                    trial, config: records[trial].config, loss: records[trial].value.map { options.mode == .max ? -$0 : $0 })
            }
        }
        journalSequence = events.count
        rerun = records.filter { $0.state == .running }.map(\.trial)
        tally = [:]
        for record in records {
            tally[record.state, default: 0] += 1
            if record.state != .running { noteEnd(record.trial) }
        }
        for trial in rerun { records[trial].exploits = 0 }
        if let journal {
            for trial in records.indices { if let saved = try await journal.checkpoint(of: trial) { checkpoints[trial] = saved } }
        }
    }

    /// Writes an event to the journal, numbered before the first suspension (so in the order
    /// the searcher and scheduler saw what it records); the first failure stops new trials.
    private func log(_ event: JournalEvent) async {
        guard let journal, journalError == nil else { return }
        let index = journalSequence
        journalSequence += 1
        do {
            try await journal.write(event, at: index)
        } catch {
            journalError = error
        }
    }

    /// Runs every trial the searcher gives and returns them all.
    /// - Throws: the cluster's error when the workers cannot be placed.
    public func run() async throws -> TuneResult {
        let started = ContinuousClock.now
        try FileManager.default.createDirectory(atPath: options.folder, withIntermediateDirectories: true)
        // The workers start at once, each in a process of its own. The type is named by its
        // registration: this binary's trainables are the workers' (the same binary runs them).
        let (cluster, options) = (self.cluster, self.options)
        let spawned = await withTaskGroup(of: Result<TrialWorker, any Error>.self) { group in
            for index in 0..<options.maxConcurrent {
                group.addTask {
                    do {
                        return .success(
                            try await cluster.spawn(
                                TrialWorker.actorType(trainables: [:]), index,
                                options: ActorOptions(
                                    resources: Resources(cpu: options.cpusPerTrial), maxRestarts: 1000, ownProcess: true)))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var results: [Result<TrialWorker, any Error>] = []
            for await result in group { results.append(result) }
            return results
        }
        let workers = spawned.compactMap { try? $0.get() }
        if let failure = spawned.first(where: { (try? $0.get()) == nil }) {
            for worker in workers { try? await cluster.kill(worker) }
            _ = try failure.get()
        }
        observer(.started(workers: workers.count))
        await withTaskGroup(of: Void.self) { lanes in
            for worker in workers {
                lanes.addTask { await self.lane(worker) }
            }
        }
        for worker in workers { try? await cluster.kill(worker) }
        if let journalError { throw TuneError("the search's journal in the head could not be written: \(journalError)") }
        return TuneResult(
            trials: records, best: best(), bestModel: bestModel, seconds: (ContinuousClock.now - started).seconds,
            processes: Set(records.flatMap(\.pids)).count)
    }

    /// One worker's trials, one after another, until the searcher has no more.
    private func lane(_ worker: TrialWorker) async {
        while let trial = await nextTrial() {
            await run(trial, on: worker)
        }
    }

    private func nextTrial() async -> Int? {
        guard journalError == nil else { return nil }
        if !rerun.isEmpty { return rerun.removeFirst() }
        guard !exhausted else { return nil }
        let trial = records.count
        guard let config = searcher.suggest(trial) else {
            exhausted = true
            return nil
        }
        records.append(TrialRecord(trial: trial, config: config, state: .running))
        tally[.running, default: 0] += 1
        await log(.started(trial: trial, config: config))
        announce()
        return trial
    }

    private func score(_ value: Double) -> Double { options.mode == .max ? value : -value }

    /// Runs one trial to its end: finished, pruned or failed.
    private func run(_ trial: Int, on worker: TrialWorker) async {
        let started = ContinuousClock.now
        var checkpoint: [UInt8]? = nil
        while true {
            do {
                try await attempt(trial, on: worker, checkpoint: &checkpoint)
                break
            } catch {
                records[trial].failures += 1
                if records[trial].failures > options.maxFailures {
                    records[trial].state = .error
                    records[trial].error = Self.describe(error)
                    try? await worker.stop()
                    break
                }
                records[trial].curve = []
                await log(.retried(trial: trial))
            }
        }
        records[trial].seconds = (ContinuousClock.now - started).seconds
        let record = records[trial]
        tally[.running, default: 0] -= 1
        tally[record.state, default: 0] += 1
        noteEnd(trial)
        // The searcher and scheduler hear of the end in the same turn as its event's number.
        scheduler.complete(trial)
        searcher.observe(trial, config: record.config, loss: record.value.map { options.mode == .max ? -$0 : $0 })
        await log(
            .ended(trial: trial, state: record.state, error: record.error, failures: record.failures, seconds: record.seconds))
        observer(.trialEnded(record))
        announce()
    }

    /// An error as a trial's record shows it: a trainable's own error by its message alone.
    static func describe(_ error: any Error) -> String {
        if let remote = error as? TaskError, remote.isRemote { return remote.message }
        return "\(error)"
    }

    private func request(_ trial: Int, checkpoint: [UInt8]?) -> TrialRequest {
        TrialRequest(
            trial: trial, program: program, config: records[trial].config.json, metric: options.metric, folder: options.folder,
            checkpoint: checkpoint, timeout: options.trialTimeout, baseSettings: options.baseSettings)
    }

    /// One start of a trial, report by report, with the scheduler's decisions.
    private func attempt(_ trial: Int, on worker: TrialWorker, checkpoint: inout [UInt8]?) async throws {
        var report = try await worker.start(request(trial, checkpoint: checkpoint))
        while true {
            if report.ended {
                // A program's clean exit: its last report stands (one started from another
                // trial's finished checkpoint may have nothing left to report).
                guard records[trial].value != nil else {
                    throw TuneError("trial \(trial): the trainable ended without reporting '\(options.metric)'")
                }
                records[trial].state = .terminated
                return
            }
            guard let value = report.metrics[options.metric], value.isFinite else {
                try? await worker.stop()
                throw TuneError("trial \(trial): a report without a finite '\(options.metric)': \(report.metrics)")
            }
            records[trial].curve.append(value)
            records[trial].value = value
            if !records[trial].pids.contains(report.pid) { records[trial].pids.append(report.pid) }
            let step = records[trial].curve.count
            // The scheduler hears the report in the same turn as its event's number.
            let decision =
                report.done ? nil : scheduler.report(trial, step: step, score: score(value), config: records[trial].config)
            await log(.reported(trial: trial, step: step, value: value, pid: report.pid, done: report.done))
            if let interval = options.checkpointInterval, step % interval == 0, !report.done {
                let saved = try await worker.save(trial)
                checkpoints[trial] = saved
                try await journal?.saveCheckpoint(saved, of: trial)
            }
            guard let decision else {
                try await keepModel(of: trial, from: worker)
                records[trial].state = .terminated
                return
            }
            switch decision {
            case .proceed:
                report = try await worker.step(trial)
            case .finish:
                try await keepModel(of: trial, from: worker)
                try await worker.stop()
                records[trial].state = .terminated
                return
            case .stop:
                try await worker.stop()
                records[trial].state = .pruned
                return
            case .exploit(let donor, let config):
                guard let saved = checkpoints[donor] else {
                    report = try await worker.step(trial)
                    continue
                }
                records[trial].config = config
                records[trial].exploits += 1
                await log(.exploited(trial: trial, donor: donor, config: config))
                checkpoint = saved
                report = try await worker.start(request(trial, checkpoint: saved))
            }
        }
    }

    private func best() -> TrialRecord? {
        records.filter { $0.value != nil }.max { score($0.value!) < score($1.value!) }
    }

    /// Takes a finishing trial's model from its worker when it is the best finished so far.
    private func keepModel(of trial: Int, from worker: TrialWorker) async throws {
        guard options.keepBestModel, let value = records[trial].value else { return }
        if let kept = bestModel, let leader = records[kept.trial].value, score(leader) >= score(value) { return }
        if let model = try await worker.model(trial) { bestModel = (trial, model) }
    }

    /// Keeps the best ended trial.
    private func noteEnd(_ trial: Int) {
        guard let value = records[trial].value else { return }
        if let best = bestEnded, let leader = records[best].value, score(leader) >= score(value) { return }
        bestEnded = trial
    }

    private func announce() {
        observer(
            .progress(
                running: tally[.running] ?? 0, finished: tally[.terminated] ?? 0, pruned: tally[.pruned] ?? 0,
                failed: tally[.error] ?? 0, best: bestEnded.map { records[$0] }))
    }
}
