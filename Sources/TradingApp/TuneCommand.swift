import ArgumentParser
import Foundation
import Shoal
import ShoalTune
import Synchronization

/// `trading tune`: a hyperparameter search on the cluster.
struct TuneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Search hyperparameters on the cluster: trials in reused worker actors, a searcher and a scheduler.",
        discussion: """
            Built-in trainables: branin, hartmann6, styblinski-tang (test functions, one report), ppo, rainbow \
            (CartPole), sac, td3 (Pendulum), hybrid (the hybrid model's training loop, one epoch a report). Or \
            --command CMD: any program, run in the trial's folder with SHOAL_TUNE_CONFIG (the configuration as one \
            JSON object), SHOAL_TUNE_TRIAL_ID and SHOAL_TUNE_CHECKPOINT_DIR; every stdout line that is a JSON object \
            is a report. Writes results.csv, values.png and curves.png into the experiment's folder.
            """)

    @Option(help: "A built-in trainable (see above).") var trainable: String?
    @Option(help: "Any program as the trainable (run with /bin/sh -c).") var command: String?
    @Option(help: "The search space: a JSON or YAML file (default: the test function's own).") var space: String?
    @Option(help: "random, grid or tpe.") var search: ExperimentSpec.Search = .random
    @Option(help: "fifo, asha, hyperband, median or pbt.") var scheduler: ExperimentSpec.Scheduler = .fifo
    @Option(name: .customLong("num-samples"), help: "Trials (grid: times the whole grid runs).") var samples = 10
    @Option(help: "Trials at once, each in a worker actor of its own.") var maxConcurrent = 2
    @Option(help: "The metric to optimise (default: the built-in trainable's).") var metric: String?
    @Option(help: "min or max (default: the built-in trainable's).") var mode: TuneOptions.Mode?
    @Option(help: "Seeds the searcher and the scheduler: one seed, one sequence of trials.") var seed: UInt64 = 0
    @Option(help: "The experiment's name: its folder under --out, its record in the cluster's head.") var name: String?
    @Option(help: "Finish the experiment of this name, recorded in the running cluster's head (its driver died).")
    var resume: String?
    @Option(help: "Where experiments are written.") var out = "tune"
    @Option(help: "Seconds a trial may run; a command past it is stopped and counts as ERROR.") var trialTimeout: Double?
    @Option(help: "Times a failing trial starts again before it counts as ERROR.") var maxFailures = 0
    @Option(help: "CPUs each trial's worker holds.") var cpusPerTrial = 1.0
    @Option(help: "ASHA and HyperBand: reports a trial may make (Ray Tune's max_t).") var maxSteps = 100
    @Option(help: "ASHA and HyperBand: reports before the first rung.") var grace = 1
    @Option(help: "ASHA and HyperBand: the reduction factor.") var reductionFactor = 4.0
    @Option(help: "PBT: reports between exploit/explore steps.") var pbtInterval = 4
    @Option(help: "Built-in trainables: a JSON object of settings the trials' values are laid over.") var baseConfig: String?
    @Option(help: "Write the trials and the best one as JSON to this file.") var json: String?
    @Option(
        help:
            "Register the best finished trial's model under this name (ppo, rainbow, sac, td3, hybrid; needs a running cluster).")
    var register: String?
    @Option(help: "Point this alias (e.g. staging) at the registered version.") var alias: String?
    @Option(help: "Who registers (default: the user).") var identity: String?
    @Option(help: "The cluster's head (default: SHOAL_ADDRESS, this machine's session, or an embedded cluster).")
    var address: String?

    func validate() throws {
        if resume != nil {
            guard trainable == nil, command == nil, space == nil else {
                throw ValidationError(
                    "--resume NAME takes the experiment as it was recorded: no --trainable, --command or --space")
            }
            return
        }
        guard (trainable == nil) != (command == nil) else {
            throw ValidationError("give one of --trainable NAME or --command CMD")
        }
        guard samples >= 1 else { throw ValidationError("--num-samples must be at least 1") }
        guard maxConcurrent >= 1 else { throw ValidationError("--max-concurrent must be at least 1") }
        guard maxFailures >= 0 else { throw ValidationError("--max-failures must not be negative") }
        guard cpusPerTrial > 0 else { throw ValidationError("--cpus-per-trial must be positive") }
        if let trialTimeout, !(trialTimeout > 0) { throw ValidationError("--trial-timeout must be positive") }
        if command != nil, metric == nil || mode == nil { throw ValidationError("--command needs --metric and --mode") }
        if alias != nil, register == nil {
            throw ValidationError("--alias names the version --register makes: add --register NAME")
        }
        if register != nil, command != nil || TestFunction(rawValue: trainable ?? "") != nil {
            throw ValidationError("--register takes a built-in trainable with a model (ppo, rainbow, sac, td3, hybrid)")
        }
    }

    func run() async throws {
        let given = try resume == nil ? makeSpec() : nil
        let cluster = try await Cluster.connect(
            address: address,
            localCPUs: max(ProcessInfo.processInfo.activeProcessorCount, Int(cpusPerTrial.rounded(.up)) * maxConcurrent))
        do {
            let (result, spec) = try await search(given, on: cluster)
            try report(result, spec: spec)
            try registerBest(result, spec: spec, cluster: cluster)
            await cluster.shutdown()
        } catch let error as TuneError {
            await cluster.shutdown()
            throw ValidationError(error.message)
        } catch {
            await cluster.shutdown()
            throw error
        }
    }

    /// Runs (or, with `--resume`, finishes) the search; a cluster that outlives this driver
    /// keeps its journal.
    func search(_ given: ExperimentSpec?, on cluster: Cluster) async throws -> (TuneResult, ExperimentSpec) {
        let journal = cluster.isEmbedded ? nil : ExperimentJournal(store: cluster.keyValues, name: resume ?? given?.name ?? "")
        var spec: ExperimentSpec
        var events: [JournalEvent] = []
        if let resume {
            guard let journal else {
                throw TuneError(
                    "--resume needs the running cluster the experiment ran on (--address, SHOAL_ADDRESS or this machine's session)"
                )
            }
            (spec, events) = try await journal.load()
            print("Resuming \(resume): \(events.count) events recorded.")
        } else {
            guard let given else { throw TuneError("no experiment to run") }
            spec = given
            if spec.register != nil, journal == nil {
                throw TuneError(
                    "--register needs a running cluster's model registry: start one (cluster start --head) or give --address")
            }
            if let journal {
                guard try await !journal.exists() else {
                    throw TuneError(
                        "the cluster has an experiment named '\(spec.name)' already: --resume \(spec.name), or choose another --name"
                    )
                }
                try await journal.save(spec)
            }
        }
        let planned = try spec.plannedTrials()
        let place = cluster.isEmbedded ? "an embedded cluster" : "the cluster at \(cluster.address)"
        let what: String
        switch spec.program {
        case .builtIn(let name): what = name
        case .command(let command): what = "'\(command)'"
        }
        print(
            "Tuning \(what) on \(place): \(planned) trials, \(spec.maxConcurrent) at a time, \(spec.search.rawValue) search, "
                + "\(spec.scheduler.rawValue) scheduler, \(spec.mode.rawValue) \(spec.metric); folder \(spec.folder).")
        flushStandardOutput()
        let table = ProgressTable(planned: planned, metric: spec.metric)
        let tuner = try Tuner(
            cluster: cluster, program: spec.program, searcher: try spec.makeSearcher(), scheduler: try spec.makeScheduler(),
            options: spec.options, journal: journal, observer: { table.show($0) })
        if !events.isEmpty { try await tuner.restore(events) }
        let result = try await tuner.run()
        table.finish()
        return (result, spec)
    }

    /// The experiment the options describe.
    func makeSpec() throws -> ExperimentSpec {
        let builtIns = TuneTrainables.all
        let program: TrialProgram
        var defaults: TuneTrainables.BuiltIn?
        if let trainable {
            guard let builtIn = builtIns[trainable] else {
                throw ValidationError("no built-in trainable '\(trainable)': \(builtIns.keys.sorted().joined(separator: ", "))")
            }
            program = .builtIn(trainable)
            defaults = builtIn
        } else {
            program = .command(command ?? "")
        }
        let searchSpace: SearchSpace
        if let space {
            do { searchSpace = try SearchSpace(file: space) } catch let error as TuneError {
                throw ValidationError(error.message)
            }
        } else if let own = defaults?.space {
            searchSpace = own
        } else {
            throw ValidationError("--space FILE is needed: \(trainable ?? "a command") has no space of its own")
        }
        let name = self.name ?? "tune-\(Int(Date().timeIntervalSince1970))"
        let folder = URL(fileURLWithPath: out).appendingPathComponent(name).standardizedFileURL.path
        var spec = ExperimentSpec(
            name: name, program: program, space: searchSpace, metric: metric ?? defaults?.metric ?? "",
            mode: mode ?? defaults?.mode ?? .min, folder: folder)
        spec.search = search
        spec.scheduler = scheduler
        spec.samples = samples
        spec.seed = seed
        spec.maxConcurrent = maxConcurrent
        spec.cpusPerTrial = cpusPerTrial
        spec.maxFailures = maxFailures
        spec.trialTimeout = trialTimeout
        spec.baseSettings = try loadBase()
        spec.maxSteps = maxSteps
        spec.grace = grace
        spec.reductionFactor = reductionFactor
        spec.pbtInterval = pbtInterval
        spec.register = register
        spec.alias = alias
        do {
            _ = try spec.makeSearcher()
            _ = try spec.makeScheduler()
        } catch let error as TuneError {
            throw ValidationError(error.message)
        }
        return spec
    }

    /// Registers the best finished trial's model with its configuration, its curve and the
    /// lineage to this job and its data.
    func registerBest(_ result: TuneResult, spec: ExperimentSpec, cluster: Cluster) throws {
        guard let name = spec.register else { return }
        guard let (trial, model) = result.bestModel else {
            print("No trial finished with a model: nothing registered.")
            return
        }
        let record = result.trials[trial]
        let registry = try ModelRegistry(address: cluster.address, identity: identity ?? ModelRegistry.defaultIdentity)
        var parameters = record.config.values.mapValues(\.description)
        parameters["experiment"] = spec.name
        parameters["trial"] = String(trial)
        if case .builtIn(let trainable) = spec.program { parameters["trainable"] = trainable }
        let binary = (try? ContentDigest.sha256(ofFile: "/proc/self/exe")) ?? ""
        let version = try registry.register(
            model: name, artifact: model.artifact, format: model.format,
            description:
                "\(model.summary), the best of \(result.trials.count) trials of trading tune \(spec.name) (trial \(trial))",
            parameters: parameters, metrics: record.value.map { [spec.metric: $0] } ?? [:],
            history: record.curve.enumerated().map { (spec.metric, Int64($0.offset + 1), $0.element) }.filter { $0.2.isFinite },
            tags: ["framework": "shoal", "task": "tune", "search": spec.search.rawValue, "scheduler": spec.scheduler.rawValue],
            lineage: ModelVersion.Lineage(jobID: cluster.jobID, dataSHA256: model.dataSHA256, codeSHA256: binary),
            configJSON: record.config.json)
        if let alias = spec.alias {
            try registry.moveAlias(name, alias, to: version.version, reason: "the best trial of trading tune \(spec.name)")
        }
        print(
            "Registered \(name) version \(version.version)\(spec.alias.map { " as \($0)" } ?? ""): trial \(trial), "
                + "data \(model.dataSHA256.prefix(12)), job \(cluster.jobID).")
    }

    /// `--base-config`'s JSON object, as text.
    func loadBase() throws -> String? {
        guard let baseConfig else { return nil }
        guard let data = FileManager.default.contents(atPath: baseConfig) else {
            throw ValidationError("cannot read --base-config \(baseConfig)")
        }
        guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
            throw ValidationError("--base-config \(baseConfig) is not a JSON object")
        }
        return String(decoding: data, as: UTF8.self)
    }

    func report(_ result: TuneResult, spec: ExperimentSpec) throws {
        let (folder, metric, mode) = (spec.folder, spec.metric, spec.mode)
        if let best = result.best, let value = best.value {
            print("Best trial \(best.trial): \(metric) \(String(format: "%.6g", value))  \(best.config)")
        } else {
            print("No trial reported \(metric).")
        }
        for trial in result.trials where trial.state == .error {
            print("Trial \(trial.trial) ERROR: \(trial.error ?? "")")
        }
        print(
            String(
                format: "%d trials in %.2f s (%.1f trials/s) on %d worker process(es).", result.trials.count, result.seconds,
                Double(result.trials.count) / max(result.seconds, 1e-9), result.processes))
        let files = try result.write(to: folder, metric: metric, mode: mode)
        if let json {
            try result.json().write(to: URL(fileURLWithPath: json))
            print("Wrote \(files.joined(separator: ", ")) and \(json).")
        } else {
            print("Wrote \(files.joined(separator: ", ")).")
        }
    }
}

extension TuneOptions.Mode: ExpressibleByArgument {}
extension ExperimentSpec.Search: ExpressibleByArgument {}
extension ExperimentSpec.Scheduler: ExpressibleByArgument {}

/// The live table: a line at most every half second (and at the end) with the trials by
/// state, the best so far, and the rate. Events only record their counts; the line is formatted
/// when it is printed.
final class ProgressTable: Sendable {
    private struct State {
        var last = ContinuousClock.now - .seconds(1)
        var latest: (running: Int, finished: Int, pruned: Int, failed: Int, best: TrialRecord?)?
    }
    private let state = Mutex(State())
    private let started = ContinuousClock.now
    let planned: Int
    let metric: String

    init(planned: Int, metric: String) {
        self.planned = planned
        self.metric = metric
    }

    func show(_ event: TuneEvent) {
        guard case .progress(let running, let finished, let pruned, let failed, let best) = event else { return }
        let line: String? = state.withLock { state in
            state.latest = (running, finished, pruned, failed, best)
            guard ContinuousClock.now - state.last >= .milliseconds(500) else { return nil }
            state.last = ContinuousClock.now
            return format(state.latest)
        }
        if let line {
            print(line)
            flushStandardOutput()
        }
    }

    func finish() {
        print(state.withLock { format($0.latest) })
        flushStandardOutput()
    }

    private func format(_ counts: (running: Int, finished: Int, pruned: Int, failed: Int, best: TrialRecord?)?) -> String {
        guard let counts else { return "" }
        let elapsed = (ContinuousClock.now - started).seconds
        let done = counts.finished + counts.pruned + counts.failed
        var line = String(
            format: "[%6.1f s] trials %d/%d: %d running, %d finished, %d pruned, %d failed  %.1f trials/s", elapsed, done,
            planned,
            counts.running, counts.finished, counts.pruned, counts.failed, Double(done) / max(elapsed, 1e-9))
        if let best = counts.best, let value = best.value {
            line += String(format: "  best %@ %.6g (trial %d)", metric, value, best.trial)
        }
        return line
    }
}
