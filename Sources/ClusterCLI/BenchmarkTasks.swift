import Shoal

/// The tasks `cluster microbenchmark` runs; registered in every `cluster` process.
enum BenchmarkTasks {
    /// Returns its input: the trivial task of Ray's microbenchmark.
    static let noop = RemoteTask("shoal.bench.noop") { (value: Int) in value }

    static let all: [any AnyRemoteTask] = [noop]
}
