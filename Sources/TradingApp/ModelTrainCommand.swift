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
        @Option(help: "Threads (ShoalTensor's loops and OpenBLAS).") var threads = 1

        enum ModelSize: String, ExpressibleByArgument, CaseIterable {
            case reference, small
        }

        func validate() throws {
            guard threads > 0 else { throw ValidationError("--threads must be above 0") }
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

        /// The configuration: the defaults, then the file, then the flags.
        func trainingConfig() throws -> TrainingConfig {
            var result = try config.map { try TrainingConfig.load(path: $0) } ?? TrainingConfig()
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
            let folder = out ?? resume ?? "model-run"
            let started = ContinuousClock.now
            var loop: TrainingLoop
            if let resume {
                let checkpoints = FileManager.default.fileExists(atPath: "\(resume)/checkpoints") ? "\(resume)/checkpoints" : resume
                loop = try TrainingLoop(resumingFrom: checkpoints)
                print("Resuming at step \(loop.state.step) of \(loop.totalSteps) (epoch \(loop.state.epoch + 1)) from \(checkpoints).")
            } else {
                let config = try trainingConfig()
                let series = try config.data.load()
                loop = try TrainingLoop(config: config, dataset: try HybridDataset.build(series, config: config.data))
            }
            let data = loop.dataset
            let counts = data.train.classCounts
            print(
                "Data: \(data.featureNames.count) features × \(data.train.steps) bars; windows train \(data.train.count), "
                    + "validation \(data.validation.count), test \(data.test.count); training classes Sell/Hold/Buy "
                    + "\(counts.map(String.init).joined(separator: "/")).")
            print(
                "Model: \(loop.parameterCount) parameters; \(loop.stepsPerEpoch) steps per epoch of \(loop.config.batchSize), "
                    + "\(loop.totalSteps) steps at most; kernels \(BLAS.coreName), \(threads) thread(s).")

            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(loop.config).write(to: URL(fileURLWithPath: "\(folder)/config.json"))
            let checkpoints = try CheckpointFolder(path: "\(folder)/checkpoints", keep: loop.config.keepCheckpoints)

            let interrupted = Atomic<Bool>(false)
            signal(SIGINT, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
            source.setEventHandler { interrupted.store(true, ordering: .relaxed) }
            source.resume()
            defer {
                source.cancel()
                signal(SIGINT, SIG_DFL)
            }

            var lastLine = ContinuousClock.now - .seconds(10)
            var history = loop.state.history
            try loop.run(checkpoints: checkpoints, stopRequested: { interrupted.load(ordering: .relaxed) }) { event in
                switch event {
                case .step(let report):
                    let now = ContinuousClock.now
                    guard now - lastLine >= .seconds(2) || report.step == report.totalSteps else { return }
                    lastLine = now
                    print(
                        String(
                            format: "epoch %d/%d  step %d/%d  loss %.4f  lr %.2e  %.0f samples/s  ETA %@", report.epoch,
                            report.epochs, report.step, report.totalSteps, report.loss, report.learningRate,
                            report.samplesPerSecond, Self.duration(report.secondsLeft)))
                case .epoch(let record):
                    history.append(record)
                    let v = record.validation
                    print(
                        String(
                            format:
                                "epoch %d%@: train loss %.4f | validation loss %.4f, accuracy %.4f, macro-F1 %.4f, MSE %.4f, IC %.4f",
                            record.epoch, record.complete ? "" : " (cut short)", record.trainLoss, v.loss, v.accuracy,
                            v.macroF1, v.mse, v.informationCoefficient))
                    try? LearningCurveReport.write(history, to: folder)
                case .checkpoint(let path):
                    print("Checkpoint: \(path)")
                case .stoppedEarly(let epoch, let best):
                    print("Stopped early after epoch \(epoch): no better validation loss since epoch \(best).")
                }
            }
            try LearningCurveReport.write(loop.state.history, to: folder)
            guard loop.state.finished else {
                print("Stopped at step \(loop.state.step) of \(loop.totalSteps); go on with: trading model train --resume \(folder)")
                throw ExitCode(130)
            }
            let final = loop.bestParameters ?? loop.parameters
            try SafeTensors.write(
                loop.namedParameters(final), metadata: ["format": "pt", "model": "shoal-hybrid"],
                to: "\(folder)/model.safetensors")
            let report = TestReport(
                metrics: loop.evaluate(loop.dataset.test, weights: final), trainCounts: loop.dataset.train.classCounts,
                testLabels: loop.dataset.test.labels, epoch: loop.state.bestEpoch)
            try encoder.encode(report).write(to: URL(fileURLWithPath: "\(folder)/test-report.json"))
            print(report.summary)
            print(
                "Wrote \(folder)/model.safetensors, metrics.csv, learning-curve.png, validation-metrics.png, test-report.json "
                    + "(\(Self.duration((ContinuousClock.now - started).seconds)) in all).")
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
