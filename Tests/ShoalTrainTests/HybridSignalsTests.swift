import Foundation
import ShoalBacktest
import ShoalMarket
import ShoalTensor
import Testing

@testable import ShoalTrain

struct HybridSignalsTests {
    /// A model folder as trading model train writes it (config.json, model.safetensors).
    static func folder(_ config: TrainingConfig, seed: UInt64 = 3, fitToData: Bool = true) throws -> String {
        var config = config
        if fitToData {
            // As the training loop does: the model takes the data's features and window.
            config.model.features = try TrainingLoopTests.dataset(config).featureNames.count
            config.model.steps = config.data.steps
        }
        let model = try HybridModel(config: config.model, seed: seed)
        let folder = TrainingLoopTests.temporaryFolder()
        try TrainingJSON.encoder().encode(config).write(to: URL(fileURLWithPath: folder + "/config.json"))
        try SafeTensors.write(model.parameters, to: folder + "/model.safetensors")
        return folder
    }

    /// Every asset gets a signal at every bar of the span; the action, weight and confidence
    /// agree; the same source gives the same signals.
    @Test func signalsFromAModelFolder() throws {
        let config = TrainingLoopTests.tinyConfig()
        let folder = try Self.folder(config)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var source = try HybridSignals.load(folder: folder)
        source.passes = 6
        source.windowsPerBatch = 7
        let series = try config.data.load()
        let signals = try source.signals(for: series, bars: 300..<400, weight: 0.5)
        #expect(signals.count == 2 * 100)
        #expect(Set(signals.map(\.instrument)) == ["AAA", "BBB"] && signals.map(\.bar).min() == 300)
        for signal in signals {
            #expect(signal.confidence >= 1.0 / 3 - 1e-6 && signal.confidence <= 1 + 1e-6)
            #expect(signal.targetWeight == (signal.action == .buy ? 0.5 : 0))
            #expect(signal.disagreement >= 0 && signal.modelVersion == (folder as NSString).lastPathComponent)
        }
        #expect(try source.signals(for: series, bars: 300..<400, weight: 0.5) == signals)
    }

    /// Without dropout every pass is the plain forward pass: the confidence is its top
    /// probability, the spread 0, and how windows are batched changes nothing.
    @Test func withoutDropoutSignalsAreThePlainForwardPass() throws {
        var config = TrainingLoopTests.tinyConfig()
        config.model.dropout = 0
        let folder = try Self.folder(config)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var source = try HybridSignals.load(folder: folder)
        source.passes = 3
        let series = try config.data.load()
        let batched = try source.signals(for: series, bars: 350..<370, weight: 1)
        source.windowsPerBatch = 1
        let single = try source.signals(for: series, bars: 350..<370, weight: 1)
        #expect(zip(batched, single).allSatisfy { $0.action == $1.action && abs($0.confidence - $1.confidence) < 1e-5 })
        let inputs = try HybridDataset.modelInputs(series[0], trainingBars: Int(Double(series[0].close.count) * 0.7))
        let steps = config.data.steps
        let window = Tensor(shape: [1, inputs.width, steps]) { pointer in
            for step in 0..<steps {
                for feature in 0..<inputs.width {
                    pointer[feature * steps + step] = inputs.values[(350 - steps + 1 + step) * inputs.width + feature]
                }
            }
        }
        let tape = Tape(recording: false)
        let output = source.model.forward(tape.variable(window), variables: source.model.variables(on: tape), training: false)
        let probabilities = output.logits.value.softmax().scalars
        let first = try #require(batched.first { $0.instrument == series[0].symbol && $0.bar == 350 })
        #expect(abs(first.confidence - Double(probabilities.max() ?? 0)) < 1e-5)
        #expect(first.disagreement < 1e-3)
    }

    /// A missing folder, and a model whose inputs are not the data's, are refused by name.
    @Test func badModelsAreRefused() throws {
        #expect(throws: TrainingError.self) { try HybridSignals.load(folder: "/nonexistent/model") }
        var config = TrainingLoopTests.tinyConfig()
        config.model.features = 5
        let folder = try Self.folder(config, fitToData: false)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = try HybridSignals.load(folder: folder)
        #expect(throws: TrainingError.self) {
            try source.signals(for: try TrainingLoopTests.tinyConfig().data.load(), bars: 300..<310, weight: 1)
        }
    }
}
