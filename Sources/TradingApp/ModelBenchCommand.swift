import ArgumentParser
import Foundation
import Shoal
import ShoalTensor

extension ModelCommand {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Time the hybrid model (reference configuration): training step, inference, throughput, MC dropout, memory.",
            discussion: "Compare with Benchmarks/hybrid_bench_torch.py at the same thread count.")

        enum Row: String, CaseIterable, ExpressibleByArgument {
            case train, latency, throughput, mc
        }

        @Option(help: "Threads (ShoalTensor's loops and OpenBLAS).") var threads = 1
        @Option(help: "Repetitions per row (the median is reported).") var repeats = 3
        @Option(
            parsing: .upToNextOption,
            help: "Rows to run: \(Row.allCases.map(\.rawValue).joined(separator: ", ")) (default: all).")
        var rows: [Row] = Row.allCases
        @Option(help: "Write the figures as JSON here.") var json: String?

        func run() async throws {
            guard threads > 0, repeats > 0 else { throw ValidationError("--threads and --repeats must be above 0") }
            Compute.setThreads(threads)
            print("OpenBLAS kernels: \(BLAS.coreName), \(threads) thread(s)")
            let model = try HybridModel(seed: 1)
            let names = model.parameters.keys.sorted()
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            func seconds(_ body: () throws -> Void) rethrows -> Double {
                let start = ContinuousClock.now
                try body()
                return (ContinuousClock.now - start).seconds
            }
            var results: [String: Double] = [:]

            if rows.contains(.train) {
                // Training step at batch 64: forward, backward, Adam.
                var parameters = names.compactMap { model.parameters[$0] }
                var optimiser = Adam(learningRate: 1e-3)
                let trainInput = Tensor.randomNormal(shape: [64, 32, 64], seed: 2)
                let labels = (0..<64).map { $0 % 3 }
                let returns = Tensor(shape: [64, 1], repeating: 0.001)
                var times: [Double] = []
                // One step first, untimed, as the PyTorch side does.
                for iteration in 0...repeats {
                    let time = try seconds {
                        let current = try HybridModel(parameters: Dictionary(uniqueKeysWithValues: zip(names, parameters)))
                        let tape = Tape()
                        let variables = current.variables(on: tape)
                        let output = current.forward(
                            tape.constant(trainInput), variables: variables, training: true, seed: UInt64(iteration))
                        let loss = current.loss(output, labels: labels, returns: returns)
                        tape.backward(from: loss)
                        optimiser.update(&parameters, gradients: names.map { variables[$0]?.gradient ?? Tensor(shape: [0]) })
                    }
                    if iteration > 0 { times.append(time) }
                    print(String(format: "  training step (batch 64): %.1f ms", time * 1000))
                }
                results["train_step_ms"] = median(times) * 1000
            }

            func infer(_ input: Tensor, training: Bool = false) {
                let tape = Tape(recording: false)
                _ = model.forward(tape.constant(input), variables: model.variables(on: tape), training: training).logits.value
            }
            let one = Tensor.randomNormal(shape: [1, 32, 64], seed: 3)
            if rows.contains(.latency) {
                infer(one)
                let times = (0..<max(5, repeats)).map { _ in seconds { infer(one) } }
                results["inference_batch1_ms"] = median(times) * 1000
                print(String(format: "  inference (batch 1): %.2f ms", results["inference_batch1_ms"] ?? 0))
            }
            if rows.contains(.throughput) {
                let wide = Tensor.randomNormal(shape: [256, 32, 64], seed: 4)
                infer(wide)
                let times = (0..<repeats).map { _ in seconds { infer(wide) } }
                results["throughput_batch256_per_s"] = 256 / median(times)
                print(String(format: "  throughput (batch 256): %.0f samples/s", results["throughput_batch256_per_s"] ?? 0))
            }
            if rows.contains(.mc) {
                // Monte Carlo dropout: 30 stochastic passes of one window, batched into one pass.
                let repeated = Tensor(shape: [30, 32, 64], scalars: Array((0..<30).map { _ in one.scalars }.joined()))
                infer(repeated, training: true)
                let times = (0..<max(5, repeats)).map { _ in seconds { infer(repeated, training: true) } }
                results["mc_dropout_30_ms"] = median(times) * 1000
                print(String(format: "  MC dropout, 30 passes (batch 1): %.2f ms", results["mc_dropout_30_ms"] ?? 0))
            }

            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let peak =
                status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }?.split(separator: " ").dropFirst().first.flatMap {
                    Double($0)
                } ?? 0
            results["peak_rss_mib"] = peak / 1024
            results["threads"] = Double(threads)
            print(String(format: "  peak memory: %.0f MiB", results["peak_rss_mib"] ?? 0))
            if let json {
                var object: [String: Any] = results
                object["blas_kernels"] = BLAS.coreName
                try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: URL(fileURLWithPath: json))
            }
        }
    }
}
