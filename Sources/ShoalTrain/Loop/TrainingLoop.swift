import Foundation
import Shoal
import ShoalMarket
import ShoalTensor

/// The hybrid model's training loop: shuffled mini-batches of the training windows, the
/// multi-task loss (Sell/Hold/Buy cross-entropy plus weighted forward-return MSE), gradient
/// clipping by global norm, AdamW with a linear warm-up and cosine decay, a validation pass at
/// the end of every epoch, early stopping on the validation loss, and the best epoch's weights
/// kept as the result.
///
/// A step is two halves, `gradients(of:step:into:)` and `apply(_:)`, so that data-parallel
/// workers can average their gradients in between: the loss is a mean over the batch, so the
/// mean of equal shards' gradients is the whole batch's gradient.
public struct TrainingLoop: Sendable {
    /// The configuration, its model's `features` and `steps` set from the data.
    public let config: TrainingConfig
    public let dataset: HybridDataset
    /// The parameters' `state_dict()` names, sorted: the order of `parameters` and of a flat gradient buffer.
    public let parameterNames: [String]
    public internal(set) var parameters: [Tensor]
    public internal(set) var optimizer: Adam
    public internal(set) var state = TrainingState()
    /// The weights of the best validation epoch so far.
    public internal(set) var bestParameters: [Tensor]?
    public let schedule: LearningRateSchedule
    public let stepsPerEpoch: Int
    /// The steps the run ends at unless it stops early.
    public let totalSteps: Int
    /// The number of parameters (the length of a flat gradient buffer).
    public let parameterCount: Int

    /// The model's architecture; its own parameters are dropped, `parameters` are the weights.
    let architecture: HybridModel
    private var permutation: [Int] = []
    private var permutationEpoch = -1
    private var gradientBuffer: [Float]

    /// A new run: weights initialised from the configuration's seed, or `initialWeights` (fine-tuning).
    /// - Throws: `TrainingError` for a bad configuration, too little data for one batch, or
    ///   initial weights that are not the configured model's.
    public init(config: TrainingConfig, dataset: HybridDataset, initialWeights: [String: Tensor]? = nil) throws {
        var config = config
        config.model.features = dataset.featureNames.count
        config.model.steps = dataset.train.steps
        try config.validate()
        guard dataset.train.count >= config.batchSize else {
            throw TrainingError(
                "the training split has \(dataset.train.count) windows, fewer than one batch of \(config.batchSize)")
        }
        var model: HybridModel
        do {
            model = try HybridModel(config: config.model, seed: config.seed)
        } catch {
            throw TrainingError("model: \(error)")
        }
        self.config = config
        self.dataset = dataset
        parameterNames = model.parameters.keys.sorted()
        parameters = parameterNames.map { model.parameters[$0] ?? Tensor(shape: [0]) }
        if let initialWeights {
            do {
                _ = try HybridModel(config: config.model, parameters: initialWeights)
            } catch {
                throw TrainingError("the initial weights do not fit the configured model: \(error)")
            }
            parameters = parameterNames.map { initialWeights[$0] ?? Tensor(shape: [0]) }
        }
        model.parameters = [:]
        architecture = model
        optimizer = Adam(learningRate: config.learningRate, weightDecay: config.weightDecay)
        stepsPerEpoch = dataset.train.count / config.batchSize
        let planned = stepsPerEpoch * config.epochs
        totalSteps = config.maxSteps > 0 ? min(planned, config.maxSteps) : planned
        schedule = .cosine(
            initial: config.learningRate, minimum: config.minimumLearningRate, total: totalSteps,
            warmup: config.warmupSteps)
        parameterCount = parameters.reduce(0) { $0 + $1.count }
        // The parameters' gradients, then the loss (reduced with them).
        gradientBuffer = [Float](repeating: 0, count: parameterCount + 1)
    }


    /// The weights by `state_dict()` name.
    public func namedParameters(_ weights: [Tensor]? = nil) -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: zip(parameterNames, weights ?? parameters))
    }

    /// The model the run has produced: the best validation epoch's weights (the current ones
    /// before the first evaluation).
    public func finalModel() throws -> HybridModel {
        try HybridModel(config: config.model, parameters: namedParameters(bestParameters))
    }

    /// Weights laid end to end in `parameterNames` order.
    public func flattened(_ weights: [Tensor]) -> [Float] {
        var flat: [Float] = []
        flat.reserveCapacity(parameterCount)
        for tensor in weights { flat += tensor.scalars }
        return flat
    }

    /// Weights by name from a flat buffer in `parameterNames` order.
    /// - Throws: `TrainingError` when the buffer's length is not the model's parameter count.
    public func unflatten(_ flat: [Float]) throws -> [String: Tensor] {
        guard flat.count == parameterCount else {
            throw TrainingError("\(flat.count) weights for a model of \(parameterCount) parameters")
        }
        var weights: [String: Tensor] = [:]
        var offset = 0
        for (name, template) in zip(parameterNames, parameters) {
            weights[name] = Tensor(shape: template.shape, scalars: Array(flat[offset..<(offset + template.count)]))
            offset += template.count
        }
        return weights
    }

    // MARK: - One step

    /// The training windows of step `batchInEpoch` of `epoch`: a slice of the epoch's shuffled order.
    public mutating func batchIndices(epoch: Int, batch: Int) -> ArraySlice<Int> {
        if permutationEpoch != epoch {
            permutation = Array(0..<dataset.train.count)
            var random = SeededGenerator(seed: config.seed ^ 0x5348_4F41_4C00_0000 &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
            // Fisher–Yates with the run's own generator: the same order on every machine.
            for index in stride(from: permutation.count - 1, to: 0, by: -1) {
                permutation.swapAt(index, Int(random.next() % UInt64(index + 1)))
            }
            permutationEpoch = epoch
        }
        let start = batch * config.batchSize
        return permutation[start..<(start + config.batchSize)]
    }

    /// The dropout seed of a step.
    public func dropoutSeed(step: Int) -> UInt64 { config.seed &+ 0xD50F &+ UInt64(step) &* 0xBF58_476D_1CE4_E5B9 }

    /// The mean loss over `samples` of the training split and its gradient, written into the
    /// first `parameterCount` elements of `gradients`, parameter after parameter (in
    /// `parameterNames` order).
    /// - Returns: the loss.
    public func gradients<Samples: Collection<Int>>(
        of samples: Samples, step: Int, dropoutSeed: UInt64? = nil, into gradients: UnsafeMutableBufferPointer<Float>
    ) -> Double {
        precondition(gradients.count >= parameterCount, "the gradient buffer holds \(gradients.count), not \(parameterCount)")
        let (input, labels, returns) = dataset.train.batch(samples)
        let tape = Tape()
        let variables = parameters.map { tape.variable($0) }
        let named = Dictionary(uniqueKeysWithValues: zip(parameterNames, variables))
        let output = architecture.forward(
            tape.constant(input), variables: named, training: true, seed: dropoutSeed ?? self.dropoutSeed(step: step))
        let loss = architecture.loss(output, labels: labels, returns: returns)
        tape.backward(from: loss)
        guard let base = gradients.baseAddress else { return Double(loss.value.scalars.first ?? .nan) }
        var offset = 0
        for (variable, parameter) in zip(variables, parameters) {
            if let gradient = variable.gradient {
                gradient.withPointer { (base + offset).update(from: $0, count: parameter.count) }
            } else {
                (base + offset).update(repeating: 0, count: parameter.count)
            }
            offset += parameter.count
        }
        return Double(loss.value.scalars.first ?? .nan)
    }

    /// Clips the whole batch's gradients (the first `parameterCount` elements of `gradients`)
    /// and takes one AdamW step at the schedule's rate.
    /// - Returns: the gradients' norm before clipping and the learning rate used.
    @discardableResult
    public mutating func apply(_ gradients: UnsafeMutableBufferPointer<Float>) -> (gradientNorm: Double, learningRate: Double) {
        let flat = UnsafeMutableBufferPointer(rebasing: gradients[0..<parameterCount])
        let norm = clipGradients(flat: flat, maxNorm: config.clipNorm > 0 ? config.clipNorm : .infinity)
        let rate = schedule.rate(at: state.step)
        optimizer.learningRate = rate
        optimizer.update(&parameters, flatGradients: UnsafeBufferPointer(flat))
        return (Double(norm), Double(rate))
    }

    /// One optimiser step on the next batch. With several ranks, this rank computes the gradient
    /// of its equal slice of the batch, and `reduce` must replace the buffer (gradients, then the
    /// loss as its last element) with the mean over all ranks.
    public mutating func trainStep(
        shard: Shard = .whole, reduce: (UnsafeMutableBufferPointer<Float>) throws -> Void = { _ in }
    ) throws -> (loss: Double, gradientNorm: Double, learningRate: Double) {
        let batch = batchIndices(epoch: state.epoch, batch: state.batchInEpoch)
        let size = batch.count / shard.size
        let samples = batch.dropFirst(shard.rank * size).prefix(size)
        var buffer = gradientBuffer
        gradientBuffer = []
        defer { gradientBuffer = buffer }
        let step = state.step
        let seed = shard.size == 1 ? nil : dropoutSeed(step: step) ^ (UInt64(shard.rank) &* 0x94D0_49BB_1331_11EB)
        let (loss, norm, rate) = try buffer.withUnsafeMutableBufferPointer { buffer in
            buffer[parameterCount] = Float(gradients(of: samples, step: step, dropoutSeed: seed, into: buffer))
            try reduce(buffer)
            let (norm, rate) = apply(buffer)
            return (Double(buffer[parameterCount]), norm, rate)
        }
        state.step += 1
        state.batchInEpoch += 1
        state.trainLossSum += loss
        state.trainLossCount += 1
        state.samplesSeen += batch.count
        return (loss, norm, rate)
    }

    // MARK: - The run

    /// Trains until the run ends (its steps, or early stopping) or `stopAfter` steps, whichever
    /// comes first; writes checkpoints into `checkpoints` every `checkpointEvery` steps and
    /// where it stops.
    /// - Parameters:
    ///   - stopAfter: stop once this many steps are taken in all (the run can be resumed).
    ///   - checkpoints: the checkpoint folder, or nil for none.
    ///   - checkpointAtStop: whether stopping before the end writes a checkpoint.
    ///   - stopRequested: asked before every step; true stops the run there (as `stopAfter`).
    ///   - shard: this rank's place among data-parallel ranks.
    ///   - reduce: averages a step's gradient buffer over the ranks (see `trainStep`).
    ///   - observer: told of every step, epoch, checkpoint and early stop.
    /// - Throws: when a checkpoint cannot be written, or `reduce` fails.
    public mutating func run(
        stopAfter: Int? = nil, checkpoints: CheckpointFolder? = nil, checkpointAtStop: Bool = true,
        stopRequested: () -> Bool = { false }, shard: Shard = .whole,
        reduce: (UnsafeMutableBufferPointer<Float>) throws -> Void = { _ in },
        observer: (TrainingEvent) -> Void = { _ in }
    ) throws {
        guard config.batchSize % shard.size == 0 else {
            throw TrainingError("a batch of \(config.batchSize) does not split evenly into \(shard.size) workers")
        }
        var lastCheckpoint = state.step
        while !state.finished {
            if let stopAfter, state.step >= stopAfter { break }
            if stopRequested() { break }
            let started = ContinuousClock.now
            let (loss, norm, rate) = try trainStep(shard: shard, reduce: reduce)
            state.trainingSeconds += (ContinuousClock.now - started).seconds
            let rate_ = state.trainingSeconds > 0 ? Double(state.samplesSeen) / state.trainingSeconds : 0
            let perStep = state.trainingSeconds / Double(max(1, state.step))
            observer(
                .step(
                    StepReport(
                        step: state.step, totalSteps: totalSteps, epoch: state.epoch + 1, epochs: config.epochs, loss: loss,
                        gradientNorm: norm, learningRate: rate, samplesPerSecond: rate_,
                        secondsLeft: perStep * Double(totalSteps - state.step))))
            let epochDone = state.batchInEpoch == stepsPerEpoch
            let runDone = state.step >= totalSteps
            if epochDone || runDone { endEpoch(complete: epochDone, learningRate: rate, observer: observer) }
            if runDone { state.finished = true }
            if let checkpoints, config.checkpointEvery > 0, state.step % config.checkpointEvery == 0, !state.finished {
                try observer(.checkpoint(path: checkpoints.save(self)))
                lastCheckpoint = state.step
            }
        }
        if let checkpoints, state.finished || (checkpointAtStop && state.step != lastCheckpoint) {
            try observer(.checkpoint(path: checkpoints.save(self)))
        }
    }

    private mutating func endEpoch(complete: Bool, learningRate: Double, observer: (TrainingEvent) -> Void) {
        let validation = evaluate(dataset.validation)
        let record = EpochRecord(
            epoch: state.epoch + 1, step: state.step,
            trainLoss: state.trainLossCount > 0 ? state.trainLossSum / Double(state.trainLossCount) : .nan,
            validation: validation, learningRate: learningRate, seconds: state.trainingSeconds,
            samplesPerSecond: state.trainingSeconds > 0 ? Double(state.samplesSeen) / state.trainingSeconds : 0,
            complete: complete)
        state.history.append(record)
        observer(.epoch(record))
        if validation.loss.isFinite, validation.loss < (state.bestValidationLoss ?? .infinity) {
            state.bestValidationLoss = validation.loss
            state.bestEpoch = record.epoch
            state.epochsWithoutImprovement = 0
            bestParameters = parameters
        } else {
            state.epochsWithoutImprovement += 1
            if config.patience > 0, state.epochsWithoutImprovement >= config.patience {
                state.stoppedEarly = true
                state.finished = true
                observer(.stoppedEarly(epoch: record.epoch, bestEpoch: state.bestEpoch))
            }
        }
        if complete {
            state.epoch += 1
            state.batchInEpoch = 0
            state.trainLossSum = 0
            state.trainLossCount = 0
        }
    }

    // MARK: - Evaluation

    /// The model's predictions on every window of `set`: classes, returns (scaled as the targets)
    /// and the mean loss.
    public func predict(_ set: WindowSet, weights: [Tensor]? = nil) -> (classes: [Int], returns: [Float], loss: Double) {
        let named = namedParameters(weights)
        var classes: [Int] = []
        var predicted: [Float] = []
        classes.reserveCapacity(set.count)
        predicted.reserveCapacity(set.count)
        var lossSum = 0.0
        var start = 0
        while start < set.count {
            let end = min(set.count, start + config.evaluationBatch)
            let (input, labels, returns) = set.batch(start..<end)
            let tape = Tape(recording: false)
            let output = architecture.forward(
                tape.constant(input), variables: named.mapValues { tape.constant($0) }, training: false)
            let logProbabilities = output.logits.value.logSoftmax()
            let width = output.logits.shape[1]
            for (row, label) in labels.enumerated() {
                let logits = logProbabilities.scalars[(row * width)..<((row + 1) * width)]
                classes.append(logits.indices.max { logits[$0] < logits[$1] }.map { $0 - row * width } ?? 0)
                let regression = output.regression.value.scalars[row]
                predicted.append(regression)
                let error = Double(regression - returns.scalars[row])
                lossSum += -Double(logits[row * width + label]) + Double(config.model.regressionWeight) * error * error
            }
            start = end
        }
        return (classes, predicted, set.count > 0 ? lossSum / Double(set.count) : .nan)
    }

    /// Loss, accuracy, macro-F1, MSE and information coefficient on `set`.
    public func evaluate(_ set: WindowSet, weights: [Tensor]? = nil) -> EvaluationMetrics {
        let (classes, predicted, loss) = predict(set, weights: weights)
        return EvaluationMetrics.of(
            predictions: classes, labels: set.labels.map(Int.init), predictedReturns: predicted, returns: set.returns,
            loss: loss)
    }
}

/// A rank's place among the data-parallel ranks of a run: it computes the gradient of slice
/// `rank` of `size` equal slices of every batch.
public struct Shard: Sendable, Equatable, Codable {
    public var rank: Int
    public var size: Int
    public init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }
    /// The whole batch, alone.
    public static let whole = Shard(rank: 0, size: 1)
}

