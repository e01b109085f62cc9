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
}
