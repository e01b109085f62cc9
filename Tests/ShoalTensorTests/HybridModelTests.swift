import Foundation
import Testing

@testable import ShoalTensor

struct HybridModelTests {
    static var tiny: HybridModel.Config {
        var config = HybridModel.Config()
        config.features = 4
        config.steps = 6
        config.convChannels = 2
        config.kernels = [1, 3]
        config.heads = 2
        config.lstmHidden = 2
        config.lstmLayers = 2
        config.fusionSize = 6
        return config
    }

    @Test func theReferenceConfigurationHas557956Parameters() throws {
        let model = try HybridModel(seed: 1)
        #expect(model.parameterCount == 557_956)
        #expect(model.parameters["lstm.weight_ih_l2_reverse"]?.shape == [256, 128])
        #expect(model.parameters["attention_cnn.in_proj_weight"]?.shape == [384, 128])
        #expect(model.parameters["fusion_proj.weight"]?.shape == [256, 128])
        #expect(model.parameters["conv_layers.3.weight"]?.shape == [32, 32, 11])
        var broken = model.parameters
        broken["classifier.weight"] = Tensor(shape: [2, 256])
        #expect(throws: SafeTensorsError.self) { try HybridModel(parameters: broken) }
        broken["classifier.weight"] = nil
        #expect(throws: SafeTensorsError.self) { try HybridModel(parameters: broken) }
    }

    @Test func forwardShapesAndLossGradients() throws {
        let model = try HybridModel(config: Self.tiny, seed: 3)
        let x = Tensor.randomNormal(shape: [2, 4, 6], seed: 4)
        let returns = Tensor(shape: [2, 1], scalars: [0.01, -0.02])
        let tape = Tape()
        let output = model.forward(tape.variable(x), variables: model.variables(on: tape), training: false)
        #expect(output.logits.shape == [2, 3] && output.regression.shape == [2, 1] && output.fused.shape == [2, 6, 6])
        for name in [
            "classifier.weight", "lstm.weight_hh_l1", "attention_cnn.in_proj_weight", "conv_layers.1.weight",
            "fusion_norm.weight",
        ] {
            guard let parameter = model.parameters[name] else {
                Issue.record("no \(name)")
                continue
            }
            checkGradient(name, input: parameter, tolerance: 3e-2) { tape, v in
                var variables = model.variables(on: tape)
                variables[name] = v
                return model.loss(
                    model.forward(tape.variable(x), variables: variables, training: false), labels: [0, 2], returns: returns)
            }
        }
    }

    @Test func theModelLearnsAPlantedPattern() throws {
        // Class 2 when feature 0 rises over the window, 0 when it falls, 1 when flat.
        var config = Self.tiny
        config.dropout = 0
        let model = try HybridModel(config: config, seed: 5)
        var parameters = model.parameters.sorted { $0.key < $1.key }.map(\.value)
        let names = model.parameters.keys.sorted()
        var optimiser = Adam(learningRate: 0.02)
        func batch(_ seed: UInt64, size: Int) -> (Tensor, [Int], Tensor) {
            var random = Tensor.randomNormal(shape: [size, 4, 6], standardDeviation: 0.1, seed: seed)
            var labels: [Int] = []
            for sample in 0..<size {
                let label = sample % 3
                labels.append(label)
                let slope: Float = label == 2 ? 0.5 : label == 0 ? -0.5 : 0
                for t in 0..<6 { random.scalars[(sample * 4) * 6 + t] += slope * Float(t) }
            }
            return (random, labels, Tensor(shape: [size, 1]))
        }
        var accuracy = 0.0
        for step in 0..<40 {
            let (x, labels, returns) = batch(UInt64(100 + step), size: 12)
            let tape = Tape()
            var variables: [String: Variable] = [:]
            for (name, value) in zip(names, parameters) { variables[name] = tape.variable(value) }
            let current = try HybridModel(config: config, parameters: Dictionary(uniqueKeysWithValues: zip(names, parameters)))
            let loss = current.loss(
                current.forward(tape.variable(x), variables: variables, training: true), labels: labels, returns: returns)
            tape.backward(from: loss)
            optimiser.update(&parameters, gradients: names.map { variables[$0]?.gradient ?? Tensor(shape: [0]) })
        }
        let trained = try HybridModel(config: config, parameters: Dictionary(uniqueKeysWithValues: zip(names, parameters)))
        let (x, labels, _) = batch(999, size: 30)
        let tape = Tape()
        let logits = trained.forward(tape.variable(x), variables: trained.variables(on: tape), training: false).logits.value
        let correct = (0..<30).filter { row in
            let scores = logits.scalars[(row * 3)..<(row * 3 + 3)]
            return scores.firstIndex(of: scores.max() ?? 0).map { $0 - row * 3 } == labels[row]
        }.count
        accuracy = Double(correct) / 30
        #expect(accuracy > 0.6, "accuracy \(accuracy) on held-out windows (chance: 0.33)")
    }
}

struct TrainingToolsTests {
    @Test func sgdClippingAndSchedules() {
        var parameters = [Tensor(shape: [2], scalars: [1, -1])]
        var sgd = SGD(learningRate: 0.1, momentum: 0.9)
        let gradient = [Tensor(shape: [2], scalars: [1, 1])]
        sgd.update(&parameters, gradients: gradient)
        #expect(parameters[0].scalars == [0.9, -1.1])
        sgd.update(&parameters, gradients: gradient)
        #expect(abs(parameters[0].scalars[0] - (0.9 - 0.1 * 1.9)) < 1e-6, "momentum: v = 0.9 · 1 + 1")

        var gradients = [Tensor(shape: [2], scalars: [3, 4]), Tensor(shape: [1], scalars: [0])]
        #expect(clipGradients(&gradients, maxNorm: 1) == 5)
        let clipped = gradients[0].scalars.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(abs(clipped - 1) < 1e-5)
        var small = [Tensor(shape: [1], scalars: [0.5])]
        clipGradients(&small, maxNorm: 1)
        #expect(small[0].scalars == [0.5], "under the norm nothing changes")

        #expect(LearningRateSchedule.step(initial: 1, every: 10, factor: 0.5).rate(at: 25) == 0.25)
        let cosine = LearningRateSchedule.cosine(initial: 1, minimum: 0.1, total: 110, warmup: 10)
        #expect(cosine.rate(at: 0) == 0.1 && cosine.rate(at: 9) == 1)
        #expect(abs(cosine.rate(at: 60) - 0.55) < 1e-5 && abs(cosine.rate(at: 110) - 0.1) < 1e-6)
    }

    @Test func monteCarloEnsembleAndTheFeatureExtractor() throws {
        let model = try HybridModel(config: HybridModelTests.tiny, seed: 8)
        let window = Tensor.randomNormal(shape: [1, 4, 6], seed: 9)
        let prediction = model.monteCarlo(window, passes: 20, seed: 1)
        #expect(abs(prediction.probabilities.reduce(0, +) - 1) < 1e-5)
        #expect(prediction.confidence == prediction.probabilities.max())
        #expect(prediction.regressionStandardDeviation > 0, "dropout makes the passes differ")
        #expect(model.monteCarlo(window, passes: 20, seed: 1) == prediction, "seeded")

        let ensemble = HybridEnsemble(members: [model, try HybridModel(config: HybridModelTests.tiny, seed: 10)])
        #expect(ensemble.weights == [0.5, 0.5])
        let tape = Tape()
        let logits = tape.variable(Tensor(shape: [2], scalars: [0.3, -0.2]))
        let mixed = ensemble.forward(window, tape: tape, logits: logits, training: false)
        #expect(abs(mixed.probabilities.value.sum() - 1) < 1e-5, "a mixture of distributions is one")
        let loss = mixed.probabilities.sliceLast(1..<2).sum() + mixed.regression.sum()
        tape.backward(from: loss)
        #expect(logits.gradient?.scalars.allSatisfy(\.isFinite) == true, "the mixing weights learn")

        let extractor = FeatureExtractor(model: model, capacity: 2, passes: 5)
        let first = extractor.extract(window.reshaped([4, 6]))
        #expect(first.fused.count == 6 && first.cnn.count == 4 && first.lstm.count == 4 && !first.fallback)
        #expect(extractor.extract(window.reshaped([4, 6])) == first && extractor.hits == 1)
        _ = extractor.extract(Tensor.randomNormal(shape: [4, 6], seed: 11))
        _ = extractor.extract(Tensor.randomNormal(shape: [4, 6], seed: 12))
        _ = extractor.extract(window.reshaped([4, 6]))
        #expect(extractor.misses == 4, "the first window was pushed out of a cache of two")
        var broken = window.reshaped([4, 6])
        broken.scalars[3] = .nan
        let fallback = extractor.extract(broken)
        #expect(
            fallback.fallback && fallback.fused.count == 12, "NaN in the window: basic indicators (last, mean, std per feature)")
    }
}

struct InferenceTapeTests {
    @Test func aTapeThatKeepsNothingGivesTheSameOutputs() throws {
        let model = try HybridModel(config: HybridModelTests.tiny, seed: 13)
        let x = Tensor.randomNormal(shape: [3, 4, 6], seed: 14)
        let recording = Tape()
        let kept = model.forward(recording.variable(x), variables: model.variables(on: recording), training: false)
        let lean = Tape(recording: false)
        let free = model.forward(lean.variable(x), variables: model.variables(on: lean), training: false)
        #expect(free.logits.value == kept.logits.value && free.fused.value == kept.fused.value)
        #expect(lean.nodes.isEmpty && !recording.nodes.isEmpty)
        #expect(free.logits.gradient == nil)
    }

    @Test func inferenceInChunksGivesTheWholeBatchsOutputs() throws {
        let model = try HybridModel(config: HybridModelTests.tiny, seed: 15)
        let batch = HybridModel.inferenceChunk + 9
        let x = Tensor.randomNormal(shape: [batch, 4, 6], seed: 16)
        let recording = Tape()
        let whole = model.forward(recording.constant(x), variables: model.variables(on: recording), training: false)
        let lean = Tape(recording: false)
        let chunked = model.forward(lean.constant(x), variables: model.variables(on: lean), training: false)
        #expect(chunked.logits.shape == [batch, 3] && chunked.fused.shape == whole.fused.shape)
        let largest = zip(chunked.fused.value.scalars, whole.fused.value.scalars).map { abs($0 - $1) }.max() ?? .infinity
        #expect(largest < 1e-5, "chunked and whole outputs differ by \(largest)")
        #expect(zip(chunked.logits.value.scalars, whole.logits.value.scalars).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}
