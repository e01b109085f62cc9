import ArgumentParser
import Dispatch
import Foundation
import Shoal
import ShoalTensor
import ShoalTrain
import Synchronization

extension ModelCommand {
    /// `trading model train`: the hybrid model's training loop in this process.
    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train the hybrid model on market data, with checkpoints, a learning curve and a test report.",
            discussion: """
                The data (the synthetic market, or --csv files of bars, one asset each) becomes the standard \
                features of every asset, split in time into train, validation and test (70/15/15 by default), \
                z-scored with the training span's statistics, in windows that never cross a split. The model \
                learns Sell/Hold/Buy and the forward return (AdamW, warm-up and cosine decay, clipping), is \
                checked on the validation split every epoch and stops early when that stops improving; the best \
                epoch's weights are the result.

                Writes into --out: metrics.csv, learning-curve.png, validation-metrics.png, model.safetensors \
                (the result, PyTorch's names), config.json, test-report.json and checkpoints/. Ctrl-C stops after \
                the current step with a checkpoint; --resume OUT goes on from the newest one exactly as if the \
                run had not stopped.
                """)

        @Option(help: "A JSON training configuration (TrainingConfig's fields; missing ones take their defaults).")
        var config: String?
        @Option(parsing: .upToNextOption, help: "CSV files of bars, one asset each (default: the synthetic market).")
        var csv: [String] = []
        @Option(help: "Bars per asset of the synthetic market (default 20000).") var bars: Int?
        @Option(help: "Model size: reference (557,956 parameters at 32 features) or small (for quick runs).")
        var modelSize: ModelSize?
        @Option(help: "Epochs (default 10).") var epochs: Int?
        @Option(help: "Stop after this many steps (default: no limit).") var maxSteps: Int?
        @Option(help: "Samples per step (default 64).") var batchSize: Int?
        @Option(help: "Peak learning rate (default 0.001).") var learningRate: Float?
        @Option(help: "Epochs without a better validation loss before stopping (0: never; default 3).") var patience: Int?
        @Option(help: "Write a checkpoint every this many steps (default: at the end and on Ctrl-C only).")
        var checkpointEvery: Int?
        @Option(help: "Seed of the weights, the sample order and dropout (default 0).") var seed: UInt64?
        @Option(help: "Go on from the newest checkpoint of an earlier run's --out folder (its configuration is used).")
        var resume: String?
        @Option(help: "Output folder (default: model-run, or the --resume folder).") var out: String?
        @Option(help: "Threads (ShoalTensor's loops and OpenBLAS) of a run in this process.") var threads = 1
        @Option(help: "Train data-parallel on the cluster with this many worker actors (default: in this process).")
        var workers: Int?
        @Option(help: "The cluster's head (default: SHOAL_ADDRESS, this machine's session, or an embedded cluster).")
        var address: String?
        @Option(help: "How the workers spread over nodes: pack or spread.") var placement: Placement = .pack
        @Option(help: "CPUs each worker holds (and its threads).") var cpusPerWorker = 1
        @Option(help: "GPUs each worker asks the scheduler for.") var gpusPerWorker = 0
        @Option(help: "Restarts of the workers from the last checkpoint after a failure.") var maxFailures = 3
        @Option(help: "Register the result in the cluster's model registry under this name (with its lineage).")
        var register: String?
        @Option(help: "Point this alias (e.g. staging) at the registered version.") var alias: String?
        @Option(help: "Start from a registered version's weights (fine-tuning): NAME, NAME:VERSION or NAME@ALIAS.")
        var initFrom: String?
        @Option(help: "Who registers (default: the user).") var identity: String?
        @Option(help: "Write timings as JSON here: samples/s after --warmup-steps, seconds to the first step.")
        var json: String?
        @Option(help: "Steps left out of the samples/s in --json.") var warmupSteps = 5
        @Option(help: "The workers' all-reduce: automatic (shared memory on one machine, else a ZeroMQ ring), shm or ring.")
        var collective: CollectiveKind = .automatic

        enum Placement: String, ExpressibleByArgument, CaseIterable {
            case pack, spread
        }

        enum ModelSize: String, ExpressibleByArgument, CaseIterable {
            case reference, small
        }

        func validate() throws {
            guard threads > 0 else { throw ValidationError("--threads must be above 0") }
            if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
            guard cpusPerWorker >= 1, gpusPerWorker >= 0, maxFailures >= 0 else {
                throw ValidationError("--cpus-per-worker must be at least 1, --gpus-per-worker and --max-failures not negative")
            }
            if alias != nil, register == nil {
                throw ValidationError("--alias names the version --register makes: add --register NAME")
            }
            if let initFrom { _ = try Self.parseVersion(initFrom) }
            if resume != nil, initFrom != nil {
                throw ValidationError("--resume goes on from a checkpoint: leave out --init-from")
            }
            if workers == nil {
                let clustered: [(String, Bool)] = [
                    ("--address", address != nil), ("--gpus-per-worker", gpusPerWorker != 0), ("--placement", placement != .pack),
                    ("--collective", collective != .automatic),
                ]
                let given = clustered.filter(\.1).map(\.0)
                guard given.isEmpty else {
                    throw ValidationError("\(given.joined(separator: ", ")) belong to a run on the cluster: add --workers N")
                }
            }
            if resume != nil {
                let given: [(String, Bool)] = [
                    ("--config", config != nil), ("--csv", !csv.isEmpty), ("--bars", bars != nil),
                    ("--model-size", modelSize != nil), ("--epochs", epochs != nil), ("--max-steps", maxSteps != nil),
                    ("--batch-size", batchSize != nil), ("--learning-rate", learningRate != nil),
                    ("--patience", patience != nil), ("--checkpoint-every", checkpointEvery != nil), ("--seed", seed != nil),
                ]
                let clashing = given.filter(\.1).map(\.0)
                guard clashing.isEmpty else {
                    throw ValidationError(
                        "--resume goes on with the checkpoint's configuration: leave out \(clashing.joined(separator: ", "))")
                }
            }
        }

        /// The configuration: the defaults, then the file, then the flags. A bad value in the file
        /// is a failure of the work (exit 1); one from a flag is a usage error (64).
        func trainingConfig() throws -> TrainingConfig {
            var result = try config.map { try TrainingConfig.load(path: $0) } ?? TrainingConfig()
            if let config {
                do {
                    try result.validate()
                } catch let error as TrainingError {
                    throw CommandFailure("\(config): \(error.message)")
                }
            }
            if !csv.isEmpty { result.data.csvFiles = csv }
            if let bars { result.data.bars = bars }
            if modelSize == .small {
                result.model.convChannels = 8
                result.model.kernels = [3, 5]
                result.model.heads = 2
                result.model.lstmHidden = 8
                result.model.lstmLayers = 1
                result.model.fusionSize = 32
                result.data.steps = 32
            }
            if let epochs { result.epochs = epochs }
            if let maxSteps { result.maxSteps = maxSteps }
            if let batchSize { result.batchSize = batchSize }
            if let learningRate { result.learningRate = learningRate }
            if let patience { result.patience = patience }
            if let checkpointEvery { result.checkpointEvery = checkpointEvery }
            if let seed { result.seed = seed }
            do {
                try result.validate()
            } catch let error as TrainingError {
                throw ValidationError(error.message)
            }
            return result
        }

        func run() async throws {
            // Progress lines reach a pipe (a job's log, a test) as they are printed.
            lineBufferStandardOutput()
            Compute.setThreads(threads)
            let folder = out ?? resume.map(Self.runFolder) ?? "model-run"
            let started = ContinuousClock.now
            var loop: TrainingLoop
            let checkpointPath: String
            var initialWeights: [String: Tensor]?
            var parent: (name: String, version: Int)?
            if let initFrom {
                let registry = try ModelRegistry(
                    address: try registryAddress(), identity: identity ?? ModelRegistry.defaultIdentity)
                let (name, number, alias) = try Self.parseVersion(initFrom)
                let (version, artifact) = try registry.load(name: name, version: number, alias: alias)
                initialWeights = try SafeTensors.decode(artifact, source: "\(name) version \(version.version)").tensors
                parent = (name, version.version)
                print("Starting from \(name) version \(version.version) of the registry.")
            } else if register != nil {
                _ = try registryAddress()
            }
            var resumedFrom: String?
            if let resume {
                // The run folder, its checkpoints folder, or one checkpoint.
                var source = FileManager.default.fileExists(atPath: "\(resume)/checkpoints") ? "\(resume)/checkpoints" : resume
                if !FileManager.default.fileExists(atPath: "\(source)/state.json") {
                    guard let latest = try CheckpointFolder(path: source).latest() else {
                        throw CommandFailure("\(resume) holds no checkpoint to resume from")
                    }
                    source = latest
                }
                checkpointPath = "\(folder)/checkpoints"
                loop = try TrainingLoop(resumingFrom: source)
                resumedFrom = source
                print("Resuming at step \(loop.state.step) of \(loop.totalSteps) (epoch \(loop.state.epoch + 1)) from \(source).")
            } else {
                checkpointPath = "\(folder)/checkpoints"
                var config = try trainingConfig()
                // A group restarted after a failure goes on from the last checkpoint: make some.
                if workers != nil, config.checkpointEvery == 0 { config.checkpointEvery = 50 }
                let series = try config.data.load()
                loop = try TrainingLoop(
                    config: config, dataset: try HybridDataset.build(series, config: config.data), initialWeights: initialWeights)
            }
            let data = loop.dataset
            let counts = data.train.classCounts
            print(
                "Data: \(data.featureNames.count) features × \(data.train.steps) bars; windows train \(data.train.count), "
                    + "validation \(data.validation.count), test \(data.test.count); training classes Sell/Hold/Buy "
                    + "\(counts.map(String.init).joined(separator: "/")).")
            print(
                "Model: \(loop.parameterCount) parameters; \(loop.stepsPerEpoch) steps per epoch of \(loop.config.batchSize), "
                    + "\(loop.totalSteps) steps at most; kernels \(BLAS.coreName).")

            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let encoder = TrainingJSON.encoder()
            try encoder.encode(loop.config).write(to: URL(fileURLWithPath: "\(folder)/config.json"))

            let printer = ProgressPrinter(
                folder: folder, history: loop.state.history, batchSize: loop.config.batchSize, warmupSteps: warmupSteps)
            let final: [String: Tensor]
            let bestEpoch: Int
            var finalHistory: [EpochRecord] = []
            if let workers {
                let result = try await trainOnCluster(
                    loop: loop, workers: workers, checkpoints: checkpointPath, resumeFrom: resumedFrom,
                    initialWeights: initialWeights, printer: printer)
                try LearningCurveReport.write(result.history, to: folder)
                finalHistory = result.history
                final = result.weights
                bestEpoch = result.bestEpoch
            } else {
                let checkpoints = try CheckpointFolder(path: checkpointPath, keep: loop.config.keepCheckpoints)
                let interrupted = Atomic<Bool>(false)
                signal(SIGINT, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
                source.setEventHandler { interrupted.store(true, ordering: .relaxed) }
                source.resume()
                defer {
                    source.cancel()
                    signal(SIGINT, SIG_DFL)
                }
                print("Training in this process, \(threads) thread(s).")
                try loop.run(
                    checkpoints: checkpoints, stopRequested: { interrupted.load(ordering: .relaxed) },
                    observer: { printer.show($0) })
                try LearningCurveReport.write(loop.state.history, to: folder)
                guard loop.state.finished else {
                    print(
                        "Stopped at step \(loop.state.step) of \(loop.totalSteps); go on with: trading model train --resume \(folder)"
                    )
                    throw ExitCode(130)
                }
                finalHistory = loop.state.history
                final = loop.namedParameters(loop.bestParameters ?? loop.parameters)
                bestEpoch = loop.state.bestEpoch
            }
            try SafeTensors.write(final, metadata: ["format": "pt", "model": "shoal-hybrid"], to: "\(folder)/model.safetensors")
            let weights = loop.parameterNames.map { final[$0] ?? Tensor(shape: [0]) }
            let report = TestReport(
                metrics: loop.evaluate(loop.dataset.test, weights: weights), trainCounts: loop.dataset.train.classCounts,
                testLabels: loop.dataset.test.labels, epoch: bestEpoch)
            try encoder.encode(report).write(to: URL(fileURLWithPath: "\(folder)/test-report.json"))
            print(report.summary)
            if let register {
                let registry = try ModelRegistry(
                    address: try registryAddress(), identity: identity ?? ModelRegistry.defaultIdentity)
                let record = TrainedModelRecord(
                    name: register, weightsPath: "\(folder)/model.safetensors", config: loop.config, report: report,
                    history: finalHistory,
                    dataSHA256: try loop.dataset.sha256(), jobID: ProcessInfo.processInfo.environment["SHOAL_JOB_ID"] ?? "",
                    parentVersion: parent?.name == register ? parent?.version : nil, workers: workers ?? 1)
                let version = try record.register(in: registry, alias: alias)
                print(
                    "Registered \(register) version \(version.version)\(alias.map { " as \($0)" } ?? "") (data \(record.dataSHA256.prefix(12)), "
                        + "job \(record.jobID.isEmpty ? "none" : record.jobID)).")
            }
            if let json {
                var timings = printer.timings
                timings["workers"] = Double(workers ?? 0)
                timings["batch_size"] = Double(loop.config.batchSize)
                timings["parameters"] = Double(loop.parameterCount)
                try JSONSerialization.data(withJSONObject: timings, options: [.sortedKeys]).write(to: URL(fileURLWithPath: json))
            }
            print(
                "Wrote \(folder)/model.safetensors, metrics.csv, learning-curve.png, validation-metrics.png, test-report.json "
                    + "(\(Self.duration((ContinuousClock.now - started).seconds)) in all).")
        }

        /// Data-parallel training with `workers` worker actors on the cluster.
        func trainOnCluster(
            loop: TrainingLoop, workers: Int, checkpoints: String, resumeFrom: String?, initialWeights: [String: Tensor]?,
            printer: ProgressPrinter
        ) async throws -> TrainerResult {
            let cluster = try await Cluster.connect(
                address: address, localCPUs: max(ProcessInfo.processInfo.activeProcessorCount, workers * cpusPerWorker))
            var options = TrainerOptions(checkpointFolder: checkpoints)
            options.workers = workers
            options.placement = placement == .spread ? .spread : .pack
            options.cpusPerWorker = cpusPerWorker
            options.gpusPerWorker = gpusPerWorker
            options.maxFailures = maxFailures
            options.collective = collective
            options.resumeFrom = resumeFrom
            options.initialWeights = initialWeights
            print(
                "Training on \(cluster.isEmbedded ? "an embedded cluster" : "the cluster at \(cluster.address)"): \(workers) worker(s) "
                    + "of \(cpusPerWorker) CPU(s)\(gpusPerWorker > 0 ? " and \(gpusPerWorker) GPU(s)" : ""), placement \(placement.rawValue), "
                    + "batch \(loop.config.batchSize / workers) per worker.")
            do {
                let trainer = try Trainer(cluster: cluster, config: loop.config, dataset: loop.dataset, options: options)
                let result = try await trainer.fit { printer.show($0) }
                await cluster.shutdown()
                return result
            } catch {
                await cluster.shutdown()
                throw error
            }
        }

        /// The registry's cluster: --address, SHOAL_ADDRESS, or this machine's session.
        func registryAddress() throws -> String {
            guard let found = Session().headAddress(given: address) else {
                // A failure of the work (no cluster running), not of the arguments: exit 1, no usage block.
                throw TrainingError(
                    "--register and --init-from need a running cluster's model registry: start one (cluster start --head) "
                        + "or give --address")
            }
            return found
        }

        /// The run folder a --resume path belongs to: the folder itself, or the run above a
        /// checkpoints folder or one checkpoint (whose files must not be written over).
        static func runFolder(_ resume: String) -> String {
            let files = FileManager.default
            let path = URL(fileURLWithPath: resume)
            if files.fileExists(atPath: path.appendingPathComponent("state.json").path) {
                return path.deletingLastPathComponent().deletingLastPathComponent().path
            }
            if files.fileExists(atPath: path.appendingPathComponent("latest").path) {
                return path.deletingLastPathComponent().path
            }
            return resume
        }

        /// NAME, NAME:VERSION or NAME@ALIAS.
        static func parseVersion(_ text: String) throws -> (name: String, version: Int?, alias: String?) {
            if let at = text.firstIndex(of: "@") {
                return (String(text[..<at]), nil, String(text[text.index(after: at)...]))
            }
            if let colon = text.lastIndex(of: ":") {
                guard let number = Int(text[text.index(after: colon)...]), number > 0 else {
                    throw ValidationError("\(text): the version after ':' must be a positive number")
                }
                return (String(text[..<colon]), number, nil)
            }
            return (text, nil, nil)
        }

        static func duration(_ seconds: Double) -> String {
            guard seconds.isFinite, seconds >= 0 else { return "?" }
            let whole = Int(seconds.rounded())
            if whole >= 3600 { return "\(whole / 3600)h\(String(format: "%02d", whole % 3600 / 60))m" }
            if whole >= 60 { return "\(whole / 60)m\(String(format: "%02d", whole % 60))s" }
            return "\(whole)s"
        }
    }
}

/// Prints a run's progress (a line every two seconds, each epoch, checkpoints, failures) and
/// keeps its learning curve written.
final class ProgressPrinter: @unchecked Sendable {
    // @unchecked: called from one task at a time (the loop's thread, or the trainer's task).
    private let folder: String
    private var history: [EpochRecord]
    private var lastLine = ContinuousClock.now - .seconds(10)
    private let started = Date()
    private let clockStart = ContinuousClock.now
    private let batchSize: Int
    private let warmupSteps: Int
    private var firstStepSeconds: Double?
    private var steady: (first: (step: Int, at: ContinuousClock.Instant), last: (step: Int, at: ContinuousClock.Instant))?

    init(folder: String, history: [EpochRecord], batchSize: Int, warmupSteps: Int) {
        self.folder = folder
        self.history = history
        self.batchSize = batchSize
        self.warmupSteps = warmupSteps
    }

    /// Seconds from the start to the first finished step, and samples per second between the
    /// first report at or past the warm-up and the last one.
    var timings: [String: Double] {
        var result: [String: Double] = ["first_step_seconds": firstStepSeconds ?? -1]
        if let steady, steady.last.step > steady.first.step {
            let seconds = (steady.last.at - steady.first.at).seconds
            result["samples_per_second"] = Double((steady.last.step - steady.first.step) * batchSize) / seconds
            result["measured_steps"] = Double(steady.last.step - steady.first.step)
        }
        return result
    }

    func show(_ event: TrainerEvent) {
        switch event {
        case .training(let event): show(event)
        case .started(let attempt, let nodes, let pids, let collective, let fromStep):
            let places = zip(nodes, pids).enumerated().map { "rank \($0.offset) on \($0.element.0) (pid \($0.element.1))" }
            print(
                "Workers up\(attempt > 1 ? " (attempt \(attempt))" : ""): \(places.joined(separator: ", ")); all-reduce over "
                    + "\(collective == "shm" ? "shared memory" : "a ZeroMQ ring"); from step \(fromStep).")
        case .workerFailed(let attempt, let reason, let step, let resumeStep):
            let elapsed = ModelCommand.Train.duration(Date().timeIntervalSince(started))
            print(
                "Worker failure after \(elapsed), near step \(step) (attempt \(attempt)): \(reason). Restarting the workers "
                    + (resumeStep.map { "from the checkpoint at step \($0)." } ?? "from the start (no checkpoint yet)."))
        }
    }

    func show(_ event: TrainingEvent) {
        switch event {
        case .step(let report):
            let now = ContinuousClock.now
            if firstStepSeconds == nil { firstStepSeconds = (now - clockStart).seconds }
            // The run's last segment ends with a validation pass: left out.
            if report.step >= warmupSteps, report.step < report.totalSteps {
                steady = (steady?.first ?? (report.step, now), (report.step, now))
            }
            guard now - lastLine >= .seconds(2) || report.step == report.totalSteps else { return }
            lastLine = now
            print(
                String(
                    format: "epoch %d/%d  step %d/%d  loss %.4f  lr %.2e  %.0f samples/s  ETA %@", report.epoch, report.epochs,
                    report.step, report.totalSteps, report.loss, report.learningRate, report.samplesPerSecond,
                    ModelCommand.Train.duration(report.secondsLeft)))
        case .epoch(let record):
            // A group restarted from a checkpoint reports again the epochs after it.
            history.removeAll { $0.epoch >= record.epoch }
            history.append(record)
            let v = record.validation
            print(
                String(
                    format: "epoch %d%@: train loss %.4f | validation loss %.4f, accuracy %.4f, macro-F1 %.4f, MSE %.4f, IC %.4f",
                    record.epoch, record.complete ? "" : " (cut short)", record.trainLoss, v.loss, v.accuracy, v.macroF1, v.mse,
                    v.informationCoefficient))
            try? LearningCurveReport.write(history, to: folder)
        case .checkpoint(let path):
            print("Checkpoint: \(path)")
        case .stoppedEarly(let epoch, let best):
            print("Stopped early after epoch \(epoch): no better validation loss since epoch \(best).")
        }
    }
}

extension CollectiveKind: ExpressibleByArgument {}
