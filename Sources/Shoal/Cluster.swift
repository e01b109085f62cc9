import Distributed
import Foundation
import ShoalTransport
import ShoalWire

/// A connection to a Shoal cluster: submit tasks, get their results.
///
/// ```swift
/// let cluster = try await Cluster.connect()
/// let refs = try (0..<100).map { try cluster.submit(square, $0) }
/// let squares = try await cluster.get(refs)
/// ```
public final class Cluster: Sendable {
    /// The driver core; most code needs only `Cluster`'s methods.
    public let core: DriverCore
    private let local: LocalCluster?

    /// The actor system remote actor references of this driver go through.
    public let actorSystem: ClusterActorSystem

    private init(core: DriverCore, local: LocalCluster?) {
        self.core = core
        self.local = local
        actorSystem = ClusterActorSystem()
        actorSystem.attach(driver: core)
    }

    /// The job this driver runs as.
    public var jobID: String { core.jobID }
    /// The head's address.
    public var address: String { core.headAddress }
    /// Whether this handle started its own embedded cluster.
    public var isEmbedded: Bool { local != nil }

    /// Connects to a cluster, or starts an embedded one.
    ///
    /// The address is, in order: `address`, `SHOAL_ADDRESS`, the session file written by
    /// `cluster start` on this machine. With none, an embedded cluster of one node starts in
    /// this process (`localCPUs` CPUs, default all) and stops with `shutdown()`.
    /// - Parameter newJob: connect as a job of its own even inside a job's process (a task or
    ///   actor that starts workers of its own: they end with this connection, not with the
    ///   job that started it).
    /// - Throws: `ClusterError.connectionFailed` when the head cannot be reached.
    public static func connect(address: String? = nil, localCPUs: Int? = nil, newJob: Bool = false) async throws -> Cluster {
        let environment = ProcessInfo.processInfo.environment
        let config = try RuntimeConfig.fromEnvironment(environment)
        let jobID = newJob ? "" : environment["SHOAL_JOB_ID"] ?? ""
        if let found = Session().headAddress(given: address) {
            // A head started with --secure on this machine left its secret in the session folder.
            let session = Session()
            let secret = session.directory + "/cluster.secret"
            if environment[ClusterSecurity.variable] == nil, address == nil, environment["SHOAL_ADDRESS"] == nil,
                session.isTrusted,
                FileManager.default.fileExists(atPath: secret)
            {
                setenv(ClusterSecurity.variable, secret, 1)
            }
            let target = found.hasPrefix("tcp://") ? found : "tcp://" + found
            let core = try await DriverCore.connect(headAddress: target, jobID: jobID, config: config)
            return Cluster(core: core, local: nil)
        }
        let local = try await LocalCluster(cpus: localCPUs, config: config)
        do {
            let core = try await DriverCore.connect(headAddress: local.head.address, jobID: jobID, config: config)
            return Cluster(core: core, local: local)
        } catch {
            local.shutdown()
            throw error
        }
    }

    /// Submits a task and returns a reference to its result at once.
    /// - Parameters:
    ///   - task: a task registered with `Shoal.bootstrap(tasks:)`.
    ///   - input: its input; `ObjectRef`s inside it are dependencies.
    ///   - options: overrides the task's default options.
    /// - Throws: when the input cannot be encoded or the options are invalid.
    public func submit<Input, Output>(
        _ task: RemoteTask<Input, Output>, _ input: Input, options: TaskOptions? = nil
    ) throws -> ObjectRef<Output> {
        try core.submit(task, input, options: options)
    }

    /// Reserves bundles of resources across nodes, atomically (Ray's placement groups).
    ///
    /// ```swift
    /// let group = try await cluster.placementGroup([Resources(cpu: 1), Resources(cpu: 1)], strategy: .strictSpread)
    /// let ref = try cluster.submit(train, shard, options: TaskOptions(strategy: group.bundle(0)))
    /// ```
    /// - Throws: `ClusterError` at once when the group can never fit.
    public func placementGroup(_ bundles: [Resources], strategy: PlacementGroup.Strategy = .pack) async throws -> PlacementGroup {
        try await core.createPlacementGroup(bundles, strategy: strategy)
    }

    /// Frees a placement group; tasks and actors inside it end.
    public func remove(_ group: PlacementGroup) async throws {
        try await core.removePlacementGroup(group)
    }

    /// Stores a value in the cluster and returns a reference to pass to tasks. Values past
    /// 100 KiB live in this machine's node object store, in shared memory: tasks on that node map
    /// them without a copy, tasks elsewhere pull them from it.
    /// - Parameter inObjectStore: store even a small value in the object store, for a value that
    ///   many tasks or actors read (weights broadcast to workers): each call then carries only
    ///   the reference, and each reader maps the one copy on its node.
    public func put<Value: Codable & Sendable>(_ value: Value, inObjectStore: Bool = false) async throws -> ObjectRef<Value> {
        try await core.put(value, inObjectStore: inObjectStore)
    }

    /// Waits for one result.
    /// - Throws: the task's `TaskError`, or `ClusterError.timeout`.
    public func get<Value>(_ ref: ObjectRef<Value>, timeout: Duration? = nil) async throws -> Value {
        try await ref.get(timeout: timeout)
    }

    /// Waits for several results, in order.
    /// - Parameter timeout: for all of them together.
    public func get<Value>(_ refs: [ObjectRef<Value>], timeout: Duration? = nil) async throws -> [Value] {
        try await core.values(of: refs.map(\.id), as: Value.self, timeout: timeout)
    }

    /// Waits until `numReturns` of `refs` are finished (a value or an error), or `timeout`.
    /// - Returns: the finished and the unfinished refs, each in the order given.
    public func wait<Value>(
        _ refs: [ObjectRef<Value>], numReturns: Int = 1, timeout: Duration? = nil
    ) async throws -> (ready: [ObjectRef<Value>], pending: [ObjectRef<Value>]) {
        guard numReturns >= 0, numReturns <= refs.count else {
            throw ClusterError.invalidArgument("numReturns is \(numReturns) for \(refs.count) refs")
        }
        let done = Set(await core.waitFinished(refs.map(\.id), count: numReturns, timeout: timeout))
        return (refs.filter { done.contains($0.id) }, refs.filter { !done.contains($0.id) })
    }

    /// Cancels the task behind `ref`: dropped when queued, interrupted (cooperatively) when
    /// running. Its `get` then throws a cancelled `TaskError`.
    public func cancel<Value>(_ ref: ObjectRef<Value>) async {
        await core.cancel(ref.id)
    }

    /// A client of the model registry the cluster's head hosts (an embedded cluster keeps its
    /// registry in the session folder). Changes are recorded as `identity`.
    public func registry(identity: String = ModelRegistry.defaultIdentity) throws -> ModelRegistry {
        try ModelRegistry(address: address, identity: identity)
    }

    /// The head's key-value store (Ray's internal KV): small state, up to 16 MiB a value, that
    /// outlives this driver — kept in the head's store, namespaced.
    public var keyValues: KeyValues { KeyValues(core: core) }

    /// The cluster's nodes, resources and jobs.
    public func status() async throws -> ClusterStatus {
        ClusterStatus(try await core.status())
    }

    /// Builds a distributed actor somewhere on the cluster and returns a reference to it.
    ///
    /// ```swift
    /// let counter = try await cluster.spawn(counterType, 0, options: ActorOptions(name: "hits", maxRestarts: 1))
    /// try await counter.increment()
    /// ```
    /// - Parameters:
    ///   - type: an actor type registered with `Shoal.bootstrap(tasks:actors:)`.
    ///   - arguments: what its factory gets.
    /// - Throws: `ClusterError` when it cannot be placed (infeasible) or built, or the name is taken.
    public func spawn<Arguments, Act>(
        _ type: ActorType<Arguments, Act>, _ arguments: Arguments, options: ActorOptions = ActorOptions()
    ) async throws -> Act {
        let bytes = try BinaryEncoder().encode(arguments)
        let id = try await core.spawnActor(typeName: type.name, arguments: bytes, options: options)
        return try Act.resolve(id: id, using: actorSystem)
    }

    /// A reference to a living actor with the given name, spawned by any driver of the cluster.
    /// - Throws: `ClusterError` when no living actor has that name.
    public func actor<Act: DistributedActor>(named name: String, as type: Act.Type = Act.self) async throws -> Act
    where Act.ActorSystem == ClusterActorSystem {
        try Act.resolve(id: try await core.lookupActor(named: name), using: actorSystem)
    }

    /// Ends an actor (Ray's `ray.kill`). Its callers get `ActorDiedError`; with `noRestart` false
    /// and restarts left, it is rebuilt through its initialiser instead.
    public func kill<Act: DistributedActor>(_ actor: Act, noRestart: Bool = true) async throws where Act.ID == ClusterActorID {
        try await core.killActor(actor.id, noRestart: noRestart)
    }

    /// Runs `body` on the driver's own event-loop thread, where submitting a task and getting
    /// its result need no thread hop: the lowest round-trip latency. Keep heavy computation out
    /// of `body`, since the loop also serves the driver's sockets while `body` awaits.
    public func onDriverLoop<Result: Sendable>(_ body: () async throws -> Result) async rethrows -> Result {
        try await withTaskExecutorPreference(core.loop, operation: body)
    }

    /// Disconnects; an embedded cluster stops with it.
    public func shutdown() async {
        await core.disconnect()
        try? await Task.sleep(for: .milliseconds(30))
        local?.shutdown()
    }
}

/// The head's key-value store, as one driver sees it (`Cluster.keyValues`).
public struct KeyValues: Sendable {
    let core: DriverCore

    /// Stores `value` under `key`, replacing what was there.
    /// - Throws: `ClusterError` for an empty or over-long namespace or key (1,024 bytes), a value
    ///   over 16 MiB, or a head that does not answer.
    public func put(_ value: [UInt8], forKey key: String, in namespace: String) async throws {
        try await core.keyValuePut(namespace: namespace, key: key, value: value)
    }

    /// The value under `key`, or nil.
    public func get(_ key: String, in namespace: String) async throws -> [UInt8]? {
        try await core.keyValueGet(namespace: namespace, key: key)
    }

    /// The namespace's keys starting with `prefix`, in order.
    public func keys(in namespace: String, prefix: String = "") async throws -> [String] {
        try await core.keyValueKeys(namespace: namespace, prefix: prefix)
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    public func delete(_ key: String, in namespace: String) async throws -> Bool {
        try await core.keyValueDelete(namespace: namespace, key: key)
    }
}
