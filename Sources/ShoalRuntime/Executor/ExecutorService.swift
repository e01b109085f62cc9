import Foundation
import Logging
import ShoalTransport
import ShoalWire

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a job's tasks in an executor process: drivers holding a lease push tasks straight to
/// it, and it answers with their results.
///
/// Tasks of one lease run one after another, on the service's own loop thread: a task that
/// computes takes the thread, which is what its CPU lease is for, and one that awaits lets the
/// loop serve messages meanwhile.
public actor ExecutorService: ObjectStoreClient {
    struct QueuedTask {
        var driver: [UInt8]
        var spec: Shoal_V1_TaskSpec
        var input: [UInt8]
        var resolved: ResolvedObjects
    }

    nonisolated let loop: EventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    /// Where drivers reach this executor.
    public nonisolated let address: String
    let executorID: String
    let nodeAddress: String
    let socket: RouterEndpoint
    let node: Socket
    private let registry: TaskRegistry
    private var queue: [QueuedTask] = []
    private var queueHead = 0
    private var running = false
    private var cancelled: Set<UInt64> = []
    private var currentTask: (id: UInt64, handle: Task<[UInt8], any Error>)?
    private var outbox: [[UInt8]: (results: [Shoal_V1_TaskResult], frames: [[UInt8]])] = [:]
    private var outboxOpened = ContinuousClock.now
    private var resultsWaiting = 0
    var malformed: UInt64 = 0
    /// Distributed actors hosted here, with their queued calls.
    var hostedActors: [ClusterActorID: ActorSlot] = [:]
    /// Requests to the node daemon (objects) waiting for their replies.
    private var nodeReplies: [UInt64: CheckedContinuation<Envelope, any Error>] = [:]
    private var nextNodeRequest: UInt64 = 1
    private let jobID = ProcessInfo.processInfo.environment["SHOAL_JOB_ID"] ?? ""
    private let parent = getppid()
    /// Mappings of the large store files this executor wrote or read, kept for reuse.
    private let storeMappings = StoreMappings()
    private var logger = Logger(label: "shoal.executor")

    /// Starts serving and says hello to the node daemon at `nodeAddress`.
    public init(executorID: String, nodeAddress: String, host: String, registry: TaskRegistry) async throws {
        let loop = EventLoop(name: "shoal-executor", spin: .microseconds(SpinSetting.microseconds))
        self.loop = loop
        self.nodeAddress = nodeAddress
        self.executorID = executorID
        self.registry = registry
        socket = try RouterEndpoint(binding: "tcp://\(host):0")
        address = socket.address
        node = try Socket(.dealer)
        try node.setRoutingID(executorID)
        try node.setUnboundedQueues()
        try node.connect(nodeAddress)
        logger[metadataKey: "executor"] = "\(executorID)"
        start()
    }

    private func start() {
        do {
            try socket.serve(on: loop, serveLocal: LocalLinkSetting.enabled) { [unowned self] message in
                self.assumeIsolated { $0.receive(message) }
            }
        } catch {
            logger.warning("drivers on this host will reach this executor over ZeroMQ", metadata: ["error": "\(error)"])
        }
        loop.register(node) { [unowned self] message in self.assumeIsolated { $0.receiveFromNode(message) } }
        loop.schedule(after: .milliseconds(200), repeating: .milliseconds(200)) { [unowned self] in
            self.assumeIsolated { $0.watchParent() }
        }
        var hello = Shoal_V1_ExecutorHello()
        hello.executorID = executorID
        hello.address = address
        hello.pid = getpid()
        try? node.send(Envelope(0, .executorHello(hello)))
    }

    /// An executor lives as long as its node daemon. `_exit`: nothing is left to flush, and
    /// exit handlers could wait on locks held by threads that will never run again.
    private func watchParent() {
        if getppid() != parent || isStopRequested {
            _exit(0)
        }
        storeMappings.release()
    }

    private func receiveFromNode(_ message: ShoalTransport.Message) {
        guard let incoming = try? Incoming(message, routed: false) else {
            malformed += 1
            return
        }
        if let continuation = nodeReplies.removeValue(forKey: incoming.envelope.requestID) {
            continuation.resume(returning: incoming.envelope)
            return
        }
        switch incoming.envelope.body {
        case .shutdownCluster: _exit(0)
        case .startActor(let start): startActor(start, arguments: incoming.payloads.first ?? [])
        case .stopActor(let stop): stopActor(ClusterActorID(stop.actorID))
        default: malformed += 1
        }
    }

    private func receive(_ message: ShoalTransport.Message) {
        let incoming: Incoming
        do {
            incoming = try Incoming(message, routed: true)
        } catch {
            malformed += 1
            if let peer = message.frames.first, message.frames.count > 1 {
                try? socket.send(.error(0, .malformed, "\(error)"), to: peer)
            }
            return
        }
        switch incoming.envelope.body {
        case .pushTasks(let push):
            do {
                try enqueue(push, from: incoming)
            } catch {
                malformed += 1
                try? socket.send(.error(incoming.envelope.requestID, .malformed, "\(error)"), to: incoming.sender)
            }
        case .actorCall(let call):
            deliver(call, arguments: Array(incoming.payloads), from: incoming.sender)
        case .cancelTasks(let cancel):
            for id in cancel.taskIds {
                cancelled.insert(id)
                if currentTask?.id == id { currentTask?.handle.cancel() }
            }
        default:
            malformed += 1
            try? socket.send(
                .error(incoming.envelope.requestID, .malformed, "executors take PushTasks, CancelTasks and ActorCall"),
                to: incoming.sender)
        }
    }

    private func enqueue(_ push: Shoal_V1_PushTasks, from incoming: Incoming) throws {
        // Parse the whole batch before queueing any of it, so a bad batch leaves nothing behind.
        var parsed: [QueuedTask] = []
        parsed.reserveCapacity(push.tasks.count)
        for spec in push.tasks {
            var values: [ObjectID: [UInt8]] = [:]
            var locations: [ObjectID: Shoal_V1_ObjectLocation] = [:]
            for dependency in spec.dependencies {
                if dependency.frame == 0 && dependency.hasLocation {
                    try ObjectStore.validate(dependency.location.key)
                    locations[dependency.objectID] = dependency.location
                } else {
                    values[dependency.objectID] = try incoming.payload(dependency.frame)
                }
            }
            let resolved =
                values.isEmpty && locations.isEmpty
                ? ResolvedObjects.empty : ResolvedObjects(values, locations: locations, client: self)
            parsed.append(
                QueuedTask(driver: incoming.sender, spec: spec, input: try incoming.payload(spec.inputFrame), resolved: resolved))
        }
        queue.append(contentsOf: parsed)
        if !running {
            running = true
            Task(executorPreference: loop) { await self.drain() }
        }
    }

    private func drain() async {
        while queueHead < queue.count {
            let task = queue[queueHead]
            queueHead += 1
            if queueHead > 1024 && queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            let started = ContinuousClock.now
            var result = await run(task)
            result.0.borrowed = keptReferences(task.resolved, owner: task.driver)
            if let output = result.1, output.count > inlineObjectLimit {
                // Large outputs stay on this node; the driver gets where to find them.
                do {
                    result.0.location = try await storeLocally(
                        output, key: "res-\(executorID)-\(task.spec.taskID)-\(UInt32.random(in: 0...UInt32.max))")
                    result.1 = nil
                } catch {
                    logger.warning("cannot store a large task output; sending it inline", metadata: ["error": "\(error)"])
                }
            }
            addResult(result.0, frame: result.1, for: task.driver)
            // Trivial tasks' results go back in batches; anything longer goes at once, so a
            // result never waits behind more than one following task.
            let now = ContinuousClock.now
            if queueHead >= queue.count || resultsWaiting >= 64 || now - started > .microseconds(100)
                || now - outboxOpened > .milliseconds(1)
            {
                flush()
            }
        }
        queue.removeAll(keepingCapacity: true)
        queueHead = 0
        running = false
        flush()
    }

    private func run(_ task: QueuedTask) async -> (Shoal_V1_TaskResult, [UInt8]?) {
        var result = Shoal_V1_TaskResult()
        result.taskID = task.spec.taskID
        func failure(_ message: String, type: String, application: Bool) -> (Shoal_V1_TaskResult, [UInt8]?) {
            var failure = Shoal_V1_RemoteFailure()
            failure.taskName = task.spec.name
            failure.message = message
            failure.errorType = type
            failure.applicationError = application
            result.failure = failure
            return (result, nil)
        }
        if cancelled.remove(task.spec.taskID) != nil {
            return failure("cancelled", type: "CancellationError", application: false)
        }
        guard let invoker = registry.invoker(named: task.spec.name) else {
            return failure(
                "no task named '\(task.spec.name)' is registered in this binary", type: "UnknownTask", application: false)
        }
        let call = invoker.call
        let handle = Task(executorPreference: loop) { try await call(task.input, task.resolved) }
        currentTask = (task.spec.taskID, handle)
        defer { currentTask = nil }
        do {
            return (result, try await handle.value)
        } catch is CancellationError {
            return failure("cancelled", type: "CancellationError", application: false)
        } catch TaskInvocationError.badInput(let message) {
            return failure(message, type: "BadInput", application: false)
        } catch {
            return failure(String(describing: error), type: String(reflecting: type(of: error)), application: true)
        }
    }

    /// The stored objects a finished call kept references to; each reports its end to `owner`.
    func keptReferences(_ resolved: ResolvedObjects, owner: [UInt8]) -> [ObjectID] {
        guard let borrows = resolved.borrows else { return [] }
        let loop = self.loop
        return borrows.kept { [self] id in
            loop.execute { self.assumeIsolated { $0.releaseBorrow(id, owner: owner) } }
        }
    }

    private func releaseBorrow(_ id: ObjectID, owner: [UInt8]) {
        var release = Shoal_V1_ReleaseBorrows()
        release.objectIds = [id]
        try? socket.send(Envelope(0, .releaseBorrows(release)), to: owner)
    }

    /// Puts bytes into this node's store and returns their location.
    private func storeLocally(_ bytes: [UInt8], key: String) async throws -> Shoal_V1_ObjectLocation {
        var create = Shoal_V1_CreateObject()
        create.key = key
        create.size = UInt64(bytes.count)
        create.jobID = jobID
        let reply = try await requestFromNode(.createObject(create))
        guard case .objectPlaced(let placed) = reply.body else {
            throw ClusterError.peerError("placing object \(key): \(reply.body.map { "\($0)" } ?? "no reply")")
        }
        try storeMappings.write(path: placed.path, count: bytes.count) { target in
            bytes.withUnsafeBytes { LargeCopy.copy($0, into: target) }
        }
        var seal = Shoal_V1_SealObject()
        seal.key = key
        try node.send(Envelope(0, .sealObject(seal)))
        var location = Shoal_V1_ObjectLocation()
        location.key = key
        location.nodeID = ProcessInfo.processInfo.environment["SHOAL_NODE_ID"] ?? ""
        location.nodeAddress = nodeAddress
        location.size = UInt64(bytes.count)
        return location
    }

    private func requestFromNode(_ body: Envelope.OneOf_Body) async throws -> Envelope {
        let id = nextNodeRequest
        nextNodeRequest += 1
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Envelope, any Error>) in
            do {
                try node.send(Envelope(id, body))
                nodeReplies[id] = continuation
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Maps an object through this node's store, which pulls it from its node if needed.
    public func map(_ location: Shoal_V1_ObjectLocation) async throws -> MappedObject {
        var get = Shoal_V1_GetObject()
        get.key = location.key
        get.source = location
        get.jobID = jobID
        let reply = try await requestFromNode(.getObject(get))
        switch reply.body {
        case .objectPlaced(let placed): return try storeMappings.read(path: placed.path, count: Int(placed.size))
        case .error(let error): throw ClusterError.peerError("mapping object \(location.key): \(error.message)")
        default: throw ClusterError.peerError("mapping object \(location.key): unexpected reply")
        }
    }

    private func addResult(_ result: Shoal_V1_TaskResult, frame: [UInt8]?, for driver: [UInt8]) {
        if outbox.isEmpty { outboxOpened = .now }
        var result = result
        var entry = outbox[driver] ?? ([], [])
        if let frame {
            entry.frames.append(frame)
            result.frame = UInt32(entry.frames.count)
        }
        entry.results.append(result)
        outbox[driver] = entry
        resultsWaiting += 1
    }

    private func flush() {
        for (driver, entry) in outbox {
            var results = Shoal_V1_TaskResults()
            results.results = entry.results
            do {
                try socket.send(Envelope(0, .taskResults(results)), payloads: entry.frames, to: driver)
            } catch {
                logger.warning("cannot return results to a driver", metadata: ["error": "\(error)"])
            }
        }
        outbox.removeAll(keepingCapacity: true)
        resultsWaiting = 0
    }
}
