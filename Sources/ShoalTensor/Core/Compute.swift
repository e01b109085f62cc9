import COpenBLAS
import CShoalKernels
import Dispatch
import Synchronization

/// How many threads ShoalTensor's own loops and OpenBLAS may use (as `torch.set_num_threads`).
///
/// Work that splits cleanly (the two directions of an LSTM, the heads of an attention, the rows
/// of a normalisation) runs across the threads with OpenBLAS held to one thread inside each
/// piece; large matrix products outside such pieces use OpenBLAS's own threads.
public enum Compute {
    private static let threadCount = Atomic<Int>(1)

    /// The threads in use (1 unless set).
    public static var threads: Int { threadCount.load(ordering: .relaxed) }

    /// Sets the threads for ShoalTensor's loops and for OpenBLAS.
    public static func setThreads(_ count: Int) {
        let count = max(1, count)
        threadCount.store(count, ordering: .relaxed)
        openblas_set_num_threads(Int32(count))
    }

    /// Runs `body(i)` for every i in `0..<count`, split into contiguous ranges across the
    /// threads when there are several and `count × cost` (a rough count of floating-point
    /// operations per item) is worth it.
    ///
    /// Loops nested inside one (on its threads) run serially, OpenBLAS held to one thread.
    static func parallelFor(_ count: Int, cost: Int = 1 << 16, _ body: (Int) -> Void) {
        let workers = min(threads, count)
        guard workers > 1, count * cost >= 1 << 17, shoal_in_parallel_region() == 0 else {
            for index in 0..<count { body(index) }
            return
        }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(Int32(threads)) }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                shoal_set_parallel_region(1)
                defer { shoal_set_parallel_region(0) }
                let start = count * worker / workers
                let end = count * (worker + 1) / workers
                for index in start..<end { shared.value(index) }
            }
        }
    }
}

/// A value handed to the threads of one `parallelFor`, which all return before it does; each
/// thread writes only its own part of any buffer the value points into.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
