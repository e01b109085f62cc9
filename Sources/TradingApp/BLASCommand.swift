import ArgumentParser
import Foundation
import Shoal
import ShoalTensor

/// `trading blas`: which OpenBLAS kernels this process runs, and how fast sgemm is with them.
struct BLASCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blas",
        abstract: "Show the OpenBLAS kernels in use and time a single-precision matrix product.",
        discussion: """
            `trading` sets OPENBLAS_CORETYPE for this processor when it is unset (and starts \
            again, since OpenBLAS reads it once at load); a value already set is respected.
            """)
    @Option(help: "Matrix size n for an n×n×n product.") var size = 1024
    @Option(help: "OpenBLAS threads.") var threads = 1
    @Option(help: "Repetitions (the best is reported).") var repeats = 5

    func run() async throws {
        guard size > 0, threads > 0, repeats > 0 else { throw ValidationError("--size, --threads and --repeats must be above 0") }
        BLAS.setThreads(threads)
        print(
            "OpenBLAS kernels: \(BLAS.coreName) (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"), preferred here: \(BLAS.preferredCoreType ?? "none"))"
        )
        print("Build: \(BLAS.configuration)")
        let a = Tensor.randomNormal(shape: [size, size], seed: 1)
        let b = Tensor.randomNormal(shape: [size, size], seed: 2)
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = ContinuousClock.now
            let product = Tensor.matmul(a, b)
            let elapsed = ContinuousClock.now - start
            precondition(product.count == size * size)
            best = min(best, elapsed.seconds)
        }
        let flops = 2 * Double(size) * Double(size) * Double(size)
        print(
            String(
                format: "sgemm %d³ on %d thread(s): %.1f GFLOP/s (best of %d, %.2f ms)", size, threads, flops / best / 1e9,
                repeats, best * 1000))
    }
}
