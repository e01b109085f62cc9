import Distributed
import Foundation
import Shoal

#if canImport(Glibc)
    import Glibc
#endif

/// The tasks and actors `cluster microbenchmark` runs; registered in every `cluster` process.
enum BenchmarkTasks {
    /// Returns its input: the trivial task of Ray's microbenchmark.
    static let noop = RemoteTask("shoal.bench.noop") { (value: Int) in value }

    static let actor = ActorType("shoal.bench.BenchActor") { (_: Int, system) in BenchActor(actorSystem: system) }

    static let all: [any AnyRemoteTask] = [noop]
    static let actors: [any AnyActorType] = [actor]
}

/// The trivial actor of Ray's microbenchmark.
distributed actor BenchActor {
    typealias ActorSystem = ClusterActorSystem

    distributed func small() -> Int { 0 }

    distributed func echo(_ value: Int) -> Int { value }

    distributed func take(_ value: ObjectRef<Int>) async throws -> Int { try await value.get() }

    distributed func pid() -> Int32 { getpid() }
}
