import Foundation
import ShoalTensor
import ShoalTestSupport
import Testing

/// `trading model` as a user runs it: separate processes, files in between.
@Suite struct TradingModelCommandTests {
    /// Inference splits a batch into chunks of `HybridModel.inferenceChunk`; with two threads the
    /// chunks run side by side. The outputs must not depend on it, down to the bit.
    @Test func inferenceGivesTheSameBitsOnOneThreadAndOnTwo() async throws {
        let folder = NSTemporaryDirectory() + "shoal-model-threads-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trading = binaryPath("trading")
        let initialise = try RunningProcess(trading, ["model", "init", "--seed", "3", "--out", folder + "/w.safetensors"])
        #expect(try await initialise.waitForExit(timeout: .seconds(120)) == 0, "\(initialise.output)")
        // Three chunks, the last one short.
        let batch = HybridModel.inferenceChunk * 2 + 5
        try SafeTensors.write(["input": Tensor.randomNormal(shape: [batch, 32, 64], seed: 11)], to: folder + "/x.safetensors")
        var outputs: [[String: Tensor]] = []
        for threads in [1, 2] {
            let forward = try RunningProcess(
                trading,
                [
                    "model", "forward", "--weights", folder + "/w.safetensors", "--input", folder + "/x.safetensors",
                    "--out", folder + "/y\(threads).safetensors", "--threads", String(threads),
                ])
            #expect(try await forward.waitForExit(timeout: .seconds(300)) == 0, "\(forward.output)")
            outputs.append(try SafeTensors.read(path: folder + "/y\(threads).safetensors").tensors)
        }
        for name in ["classification", "regression", "fused_features"] {
            let (one, two) = (try #require(outputs[0][name]), try #require(outputs[1][name]))
            #expect(one.shape == two.shape && one.shape.first == batch, "\(name): \(one.shape) vs \(two.shape)")
            #expect(one.scalars == two.scalars, "\(name) differs between one thread and two")
        }
        let refused = try RunningProcess(
            trading,
            ["model", "forward", "--weights", folder + "/w.safetensors", "--input", folder + "/x.safetensors", "--out", folder + "/z", "--threads", "0"])
        #expect(try await refused.waitForExit(timeout: .seconds(60)) != 0)
        #expect(refused.output.contains { $0.contains("--threads must be above 0") }, "\(refused.output)")
    }

    /// `trading model train` stopped with Ctrl-C after its first epoch and resumed from its
    /// checkpoint ends with the weights of a run that was never stopped.
    @Test func trainingStoppedAndResumedEndsWithTheUninterruptedWeights() async throws {
        let folder = NSTemporaryDirectory() + "shoal-model-train-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trading = binaryPath("trading")
        let flags = ["model", "train", "--model-size", "small", "--bars", "700", "--epochs", "6", "--batch-size", "16", "--patience", "0"]
        let whole = try RunningProcess(trading, flags + ["--out", folder + "/whole"])
        #expect(try await whole.waitForExit(timeout: .seconds(300)) == 0, "\(whole.output)")
        #expect(whole.output.contains { $0.contains("baseline: always") }, "\(whole.output)")
        for file in ["metrics.csv", "learning-curve.png", "validation-metrics.png", "model.safetensors", "test-report.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(folder)/whole/\(file)"), "no \(file)")
        }

        let stopped = try RunningProcess(trading, flags + ["--out", folder + "/stopped"])
        _ = try await stopped.waitForLine(startingWith: "epoch 1:", timeout: .seconds(300))
        stopped.signal(SIGINT)
        #expect(try await stopped.waitForExit(timeout: .seconds(120)) == 130, "\(stopped.output)")
        #expect(stopped.output.contains { $0.contains("go on with: trading model train --resume") }, "\(stopped.output)")
        #expect(!FileManager.default.fileExists(atPath: folder + "/stopped/model.safetensors"))

        let clash = try RunningProcess(trading, ["model", "train", "--resume", folder + "/stopped", "--epochs", "3"])
        #expect(try await clash.waitForExit(timeout: .seconds(60)) == 64, "\(clash.output)")
        #expect(clash.output.contains { $0.contains("leave out --epochs") }, "\(clash.output)")

        let resumed = try RunningProcess(trading, ["model", "train", "--resume", folder + "/stopped"])
        #expect(try await resumed.waitForExit(timeout: .seconds(300)) == 0, "\(resumed.output)")
        #expect(resumed.output.contains { $0.hasPrefix("Resuming at step") }, "\(resumed.output)")
        let expected = try SafeTensors.read(path: folder + "/whole/model.safetensors").tensors
        let weights = try SafeTensors.read(path: folder + "/stopped/model.safetensors").tensors
        #expect(weights.count == expected.count && weights == expected, "resumed weights differ from the uninterrupted run's")
        let rows = try String(contentsOfFile: folder + "/stopped/metrics.csv", encoding: .utf8).split(separator: "\n")
        #expect(rows.dropFirst().map { $0.split(separator: ",").first.map(String.init) } == ["1", "2", "3", "4", "5", "6"])
    }
}

