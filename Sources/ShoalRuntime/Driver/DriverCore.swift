import Foundation
import Logging
import ShoalTransport
import ShoalWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The driver side of the runtime, behind `Cluster`: it leases executors from the head, pushes
/// tasks to them directly in batches, resolves dependencies, retries after failures, and owns
/// every result until the last `ObjectRef` to it is gone.
public actor DriverCore: ObjectStoreClient {
    struct ObjectEntry {
        enum State {
            case pending
            case ready(ObjectContents)
            case failed(TaskError)
        }

        var state = State.pending
        var waiters: [(token: Int, continuation: CheckedContinuation<ObjectContents, any Error>)] = []
        var dependents: [UInt64] = []
        var released = false
    }

    struct TaskEntry {
        var id: UInt64
        var name: String
        var input: [UInt8]
        var dependencies: [ObjectID]
        /// Keep the dependencies' values alive until this task is done, for retries.
        var dependencyStorages: [RefStorage]
        var options: TaskOptions
        var retriesLeft: Int
        var unresolved = 0
        var leaseID: UInt64?
        var sentAt = ContinuousClock.now
    }

    struct Lease {
        var id: UInt64
        var shape: TaskOptions.Shape
        var socket: Connection
        var nodeID: String
        var inFlight: Set<UInt64> = []
        var idleSince = ContinuousClock.now
        /// When the executor last finished a task, or got work while idle.
        var lastProgress = ContinuousClock.now
    }

    struct ShapeQueue {
        var tasks: [UInt64] = []
        var head = 0
        var outstandingRequests = 0
        /// Since when this shape has asked for an executor without holding one, and when that
        /// was last warned about.
        var waitingSince: ContinuousClock.Instant?
        var warnedAt: ContinuousClock.Instant?
        /// Mean seconds a task of this shape takes, end to end: sets the pipeline depth. Until
        /// one has finished nothing is known, and nothing is pipelined.
        var meanSeconds: Double?
        var isEmpty: Bool { head >= tasks.count }
        var count: Int { tasks.count - head }

        mutating func popFirst() -> UInt64? {
            guard head < tasks.count else { return nil }
            let id = tasks[head]
            head += 1
            if head > 4096 && head * 2 > tasks.count {
                tasks.removeFirst(head)
                head = 0
            }
            return id
        }

        mutating func pushFront(_ id: UInt64) {
            if head > 0 {
                head -= 1
                tasks[head] = id
            } else {
                tasks.insert(id, at: 0)
            }
        }
    }

    /// The driver's event loop: it owns the driver's sockets, and code that runs on it (with it
    /// as task executor preference) reaches the driver without a thread hop.
    public nonisolated let loop: EventLoop
    private nonisolated let ownsLoop: Bool
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    /// The job this driver runs as.
    public nonisolated let jobID: String
    /// The head's address.
    public nonisolated let headAddress: String
    private let head: Socket
    private let config: RuntimeConfig
    var logger = Logger(label: "shoal.driver")
    private nonisolated let nextObjectID = Atomic<UInt64>(1)

    var objects: [ObjectID: ObjectEntry] = [:]
    /// References executors kept to objects this driver owns (in actors' state, say): such an
    /// object is freed only once they are gone too.
    var borrowCounts: [ObjectID: Int] = [:]
    private var tasks: [UInt64: TaskEntry] = [:]
    private var queues: [TaskOptions.Shape: ShapeQueue] = [:]
    private var leases: [UInt64: Lease] = [:]
    private var leaseRequests: [UInt64: TaskOptions.Shape] = [:]
    private var replies: [UInt64: CheckedContinuation<Envelope, any Error>] = [:]
    var nextRequestID: UInt64 = 1
    var actorRoutes: [ClusterActorID: ActorRoute] = [:]
    var actorSockets: [String: Connection] = [:]
    var actorCalls: [UInt64: PendingActorCall] = [:]
    var parkedActorCalls: [ClusterActorID: [PendingActorCall]] = [:]
    private var nextWaiterToken = 1
    private var pumpScheduled = false
    private var finished: UInt64 = 0
    private(set) var closed = false
    /// Why later requests fail once `closed` (a shutdown, or the head lost).
    private(set) var closedReason = "the cluster handle was shut down"
    /// Receives the head socket's disconnections (see `startServing`).
    private var headMonitor: Socket?
    /// The node daemon on this machine, whose object store holds this driver's large puts.
    private var localNode: Socket?
    private var localNodeID = ""
    private var localNodeAddress = ""
    /// Node daemons elsewhere that hold objects this driver owns (large task outputs).
    private var otherNodes: [String: Socket] = [:]
    /// Mappings of the large store files this driver wrote or read, kept for reuse.
    let storeMappings = StoreMappings()
    nonisolated let objectKeyPrefix = "obj-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-"

    /// - Parameter ownsLoop: whether letting go of this core stops `loop` (not for the core of
    ///   the handshake, whose loop the connected core adopts).
    private init(
        loop: EventLoop, head: Socket, headAddress: String, jobID: String, config: RuntimeConfig, ownsLoop: Bool = true
    ) {
        self.loop = loop
        self.head = head
        self.headAddress = headAddress
        self.jobID = jobID
        self.config = config
        self.ownsLoop = ownsLoop
    }

    /// Connects to the head, registers this executable as the job's package, and starts the
    /// driver's loop.
    /// - Parameters:
    ///   - jobID: the job to run as; empty lets the head choose.
    ///   - executable: the binary executors of this job run; default: this process's.
    /// - Throws: `ClusterError.connectionFailed` when no head answers within `timeout`.
    public static func connect(
        headAddress: String, jobID: String = "", executable: String = ChildProcess.currentExecutable,
        config: RuntimeConfig, timeout: Duration = .seconds(10)
    ) async throws -> DriverCore {
        let package = try SHA256.hexDigest(ofFile: executable)
        let head = try Socket(.dealer)
        try head.setUnboundedQueues()
        try head.setRoutingID("driver:\(getpid()):\(UInt32.random(in: 0...UInt32.max))")
        try head.connect(headAddress)
        // After the steps that may throw: a loop's thread runs until it is shut down.
        let loop = EventLoop(name: "shoal-driver", spin: .microseconds(SpinSetting.microseconds))
        let core = DriverCore(loop: loop, head: head, headAddress: headAddress, jobID: jobID, config: config, ownsLoop: false)
        let accepted: Shoal_V1_DriverAccepted
        do {
            accepted = try await core.handshake(package: package, executable: executable, timeout: timeout)
        } catch {
            loop.shutdown()
            throw error
        }
        let connected = DriverCore(adopting: core, jobID: accepted.jobID)
        try await connected.attachLocalNode(accepted)
        return connected
    }

    /// The connected core: the same loop and socket, now knowing its job id.
    private init(adopting core: DriverCore, jobID: String) {
        self.init(loop: core.loop, head: core.head, headAddress: core.headAddress, jobID: jobID, config: core.config)
        loop.execute { [self] in self.assumeIsolated { $0.startServing() } }
    }

    private func attachLocalNode(_ accepted: Shoal_V1_DriverAccepted) throws {
        guard !accepted.localNodeAddress.isEmpty else { return }
        localNode = try loop.dealer(connectedTo: accepted.localNodeAddress) { [weak self] message in
            self?.assumeIsolated { $0.receiveFromLocalNode(message) }
        }
        localNodeID = accepted.localNodeID
        localNodeAddress = accepted.localNodeAddress
    }

    private func receiveFromLocalNode(_ message: ShoalTransport.Message) {
        guard let incoming = try? Incoming(message, routed: false) else { return }
        replies.removeValue(forKey: incoming.envelope.requestID)?.resume(returning: incoming.envelope)
    }

    private func handshake(package: String, executable: String, timeout: Duration) async throws -> Shoal_V1_DriverAccepted {
        loop.register(head) { [weak self] message in self?.assumeIsolated { $0.receiveFromHead(message) } }
        defer { loop.unregister(head) }
        var connect = Shoal_V1_ConnectDriver()
        connect.packageSha256 = package
        connect.pid = getpid()
        // The host this driver reaches the head at: a node daemon there shares its machine.
        connect.host = headAddress.replacingOccurrences(of: "tcp://", with: "").split(separator: ":").first.map(String.init) ?? ""
        connect.jobID = jobID
        let reply = try await request(.connectDriver(connect), timeout: timeout, what: "connecting to the head at \(headAddress)")
        guard case .driverAccepted(let accepted) = reply.body else {
            throw ClusterError.connectionFailed(
                "the head at \(headAddress) did not accept the driver: \(reply.body.map { "\($0)" } ?? "empty reply")")
        }
        if accepted.packageNeeded {
            guard let bytes = FileManager.default.contents(atPath: executable) else {
                throw ClusterError.notFound("cannot read the job's executable at \(executable)")
            }
            var upload = Shoal_V1_UploadPackage()
            upload.sha256 = package
            let stored = try await request(
                .uploadPackage(upload), payloads: [[UInt8](bytes)], timeout: .seconds(120), what: "uploading the job's executable"
            )
            guard case .packageStored = stored.body else {
                throw ClusterError.peerError("the head did not store the job's executable: \(stored.body.map { "\($0)" } ?? "")")
            }
        }
        return accepted
    }

    private func startServing() {
        loop.register(head) { [weak self] message in self?.assumeIsolated { $0.receiveFromHead(message) } }
        loop.schedule(after: config.heartbeatInterval, repeating: config.heartbeatInterval) { [weak self] in
            self?.assumeIsolated { driver in
                driver.heartbeat()
                driver.storeMappings.release()
            }
        }
        loop.schedule(after: .milliseconds(50), repeating: .milliseconds(50)) { [weak self] in
            self?.assumeIsolated { $0.returnIdleLeases() }
        }
        // The head's connection closing means the head stopped or died, and a new head does not
        // take over this driver: what waits on it would wait forever, so it fails now.
        let endpoint = "inproc://shoal-head-monitor-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        do {
            try head.monitorDisconnections(at: endpoint)
            let monitor = try Socket(.pair)
            try monitor.connect(endpoint)
            loop.register(monitor) { [weak self] message in self?.assumeIsolated { $0.headDisconnected(message) } }
            headMonitor = monitor
        } catch {
            logger.warning("cannot watch the head's connection; a dead head will not be noticed", metadata: ["error": "\(error)"])
        }
    }

    private func headDisconnected(_ message: ShoalTransport.Message) {
        guard !closed, Socket.isDisconnection(message) else { return }
        // What the head sent before it went is still in the socket: take it first.
        while let last = try? head.receive() { receiveFromHead(last) }
        guard !closed else { return }
        logger.error("lost the connection to the head", metadata: ["head": "\(headAddress)"])
        end(because: "the connection to the head at \(headAddress) was lost (the head stopped or died)", lost: true)
    }

    /// Sends a request to the head and waits for its reply.
    func request(
        _ body: Envelope.OneOf_Body, payloads: [[UInt8]] = [], timeout: Duration, what: String, toLocalNode: Bool = false
    ) async throws -> Envelope {
        guard !closed else { throw ClusterError.shutDown(closedReason) }
        let id = nextRequestID
        nextRequestID += 1
        var timer: Int?
        defer { if let timer { loop.cancelTimer(timer) } }
        let reply = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Envelope, any Error>) in
            do {
                guard let target = toLocalNode ? localNode : head else {
                    throw ClusterError.connectionFailed("this driver has no node daemon on its machine for objects")
                }
                try target.send(Envelope(id, body), payloads: payloads)
            } catch {
                continuation.resume(throwing: ClusterError.connectionFailed("\(what): \(error)"))
                return
            }
            replies[id] = continuation
            timer = loop.schedule(after: timeout) { [weak self] in
                self?.assumeIsolated { core in
                    core.replies.removeValue(forKey: id)?.resume(
                        throwing: ClusterError.timeout("\(what): no reply within \(timeout)"))
                }
            }
        }
        if case .error(let error) = reply.body {
            throw ClusterError.peerError("\(what): \(error.message)")
        }
        return reply
    }

    /// The head's view of the cluster.
    public func status(timeout: Duration = .seconds(5)) async throws -> Shoal_V1_StatusReply {
        let reply = try await request(
            .statusRequest(Shoal_V1_StatusRequest()), timeout: timeout, what: "asking the head for status")
        guard case .statusReply(let status) = reply.body else { throw ClusterError.peerError("unexpected status reply") }
        return status
    }

    // MARK: submitting

    /// Submits a task; returns its result's reference at once.
    /// - Throws: `BinaryCodingError` when the input cannot be encoded, `ClusterError` when the
    ///   options are invalid.
    public nonisolated func submit<Input, Output>(
        _ task: RemoteTask<Input, Output>, _ input: Input, options: TaskOptions? = nil
    ) throws -> ObjectRef<Output> {
        let options = options ?? task.options
        try options.resources.validate()
        guard options.maxRetries >= 0 else {
            throw ClusterError.invalidArgument("maxRetries must be >= 0, not \(options.maxRetries)")
        }
        let collector = DependencyCollector()
        var encoder = BinaryEncoder()
        encoder.userInfo[.shoalDependencies] = collector
        let bytes = try encoder.encode(input)
        let id = nextObjectIDValue()
        let storage = RefStorage(owner: self, id: id)
        let entry = TaskEntry(
            id: id, name: task.name, input: bytes, dependencies: collector.ids,
            dependencyStorages: collector.storages, options: options, retriesLeft: options.maxRetries)
        if loop.inLoop {
            assumeIsolated { $0.accept(entry) }
        } else {
            loop.execute { [self] in self.assumeIsolated { $0.accept(entry) } }
        }
        return ObjectRef(id: id, storage: storage)
    }

    nonisolated func nextObjectIDValue() -> ObjectID {
        nextObjectID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    var localNodeIDValue: String { localNodeID }
    var localNodeAddressValue: String { localNodeAddress }

    /// A socket to the node daemon at `address`: the local one, or one opened for frees.
    private func nodeSocket(for address: String) -> Socket? {
        if address == localNodeAddress || address.isEmpty { return localNode }
        if let socket = otherNodes[address] { return socket }
        guard let socket = try? Socket.dealer(connectedTo: address) else { return nil }
        otherNodes[address] = socket
        return socket
    }

    func sendToLocalNode(_ envelope: Envelope) throws {
        guard let localNode else {
            throw ClusterError.connectionFailed("this driver has no node daemon on its machine for objects")
        }
        try localNode.send(envelope)
    }

    private func accept(_ task: TaskEntry) {
        var task = task
        objects[task.id] = ObjectEntry()
        for dependency in task.dependencies {
            switch objects[dependency]?.state {
            case .ready?: continue
            case .failed(let error)?:
                tasks[task.id] = task
                complete(task.id, .failed(TaskError(.dependencyFailed, task: task.name, message: error.description)))
                return
            case .pending?:
                objects[dependency]?.dependents.append(task.id)
                task.unresolved += 1
            case nil:
                tasks[task.id] = task
                complete(
                    task.id,
                    .failed(
                        TaskError(.dependencyFailed, task: task.name, message: "object \(dependency) is unknown to this driver")))
                return
            }
        }
        tasks[task.id] = task
        if task.unresolved == 0 { makeReady(task.id, shape: task.options.shape) }
    }

    private func makeReady(_ id: UInt64, shape: TaskOptions.Shape, front: Bool = false) {
        if front {
            queues[shape, default: ShapeQueue()].pushFront(id)
        } else {
            queues[shape, default: ShapeQueue()].tasks.append(id)
        }
        schedulePump()
    }

    private func schedulePump() {
        guard !pumpScheduled else { return }
        pumpScheduled = true
        loop.execute { [self] in
            self.assumeIsolated { core in
                core.pumpScheduled = false
                core.pump()
            }
        }
    }

    /// Sends queued tasks to leased executors, and asks for more leases while work waits.
    private func pump() {
        for shape in Array(queues.keys) {
            guard var queue = queues[shape], !queue.isEmpty else { continue }
            let depth = queue.meanSeconds.map { max(1, min(config.pipelineDepth, Int((0.004 / $0).rounded(.up)))) } ?? 1
            // Pipeline only onto executors that are making progress: a task queued behind a
            // long-running one would wait while another executor idles.
            let now = ContinuousClock.now
            let stall = Duration.seconds(max(0.002, 4 * (queue.meanSeconds ?? 0)))
            var open = leases.values.filter {
                $0.shape == shape && $0.inFlight.count < depth && ($0.inFlight.isEmpty || now - $0.lastProgress < stall)
            }.map(\.id)
            open.sort { (leases[$0]?.inFlight.count ?? 0) < (leases[$1]?.inFlight.count ?? 0) }
            for (index, leaseID) in open.enumerated() where !queue.isEmpty {
                let capacity = depth - (leases[leaseID]?.inFlight.count ?? depth)
                let fairShare = (queue.count + open.count - index - 1) / (open.count - index)
                var batch: [UInt64] = []
                while batch.count < min(capacity, max(1, fairShare)), let id = queue.popFirst() {
                    if tasks[id] != nil { batch.append(id) }
                }
                if !batch.isEmpty { send(batch, to: leaseID) }
            }
            let leaseCount = leases.values.filter { $0.shape == shape }.count
            if !queue.isEmpty && queue.outstandingRequests < 4 && queue.outstandingRequests < queue.count {
                let wanted = min(4 - queue.outstandingRequests, max(1, queue.count / depth - leaseCount))
                for _ in 0..<max(1, wanted) { requestLease(for: shape, holdingOne: leaseCount > 0, queue: &queue) }
            }
            queues[shape] = queue
        }
    }

    private func requestLease(for shape: TaskOptions.Shape, holdingOne: Bool, queue: inout ShapeQueue) {
        var request = Shoal_V1_RequestLease()
        request.resources = shape.resources.proto
        let wire = shape.strategy.wire
        request.strategy = wire.strategy
        request.nodeID = wire.nodeID
        request.soft = wire.soft
        request.placementGroupID = wire.placementGroup
        request.bundleIndex = wire.bundle
        let id = nextRequestID
        nextRequestID += 1
        leaseRequests[id] = shape
        queue.outstandingRequests += 1
        if queue.waitingSince == nil && !holdingOne { queue.waitingSince = .now }
        logger.debug(
            "lease requested",
            metadata: ["request": "\(id)", "queued": "\(queue.count)", "outstanding": "\(queue.outstandingRequests)"])
        do {
            try head.send(Envelope(id, .requestLease(request)))
        } catch {
            logger.error("cannot reach the head", metadata: ["error": "\(error)"])
        }
    }

    private func send(_ batch: [UInt64], to leaseID: UInt64) {
        guard var lease = leases[leaseID] else { return }
        var push = Shoal_V1_PushTasks()
        push.tasks.reserveCapacity(batch.count)
        var frames: [[UInt8]] = []
        var dependencyFrames: [ObjectID: UInt32] = [:]
        let now = ContinuousClock.now
        for id in batch {
            guard var task = tasks[id] else { continue }
            var spec = Shoal_V1_TaskSpec()
            spec.taskID = id
            spec.name = task.name
            frames.append(task.input)
            spec.inputFrame = UInt32(frames.count)
            for dependency in task.dependencies {
                guard case .ready(let contents)? = objects[dependency]?.state else { continue }
                guard case .inline(let value) = contents else {
                    if case .stored(let location) = contents {
                        var resolved = Shoal_V1_ResolvedDependency()
                        resolved.objectID = dependency
                        resolved.location = location
                        spec.dependencies.append(resolved)
                    }
                    continue
                }
                let frame: UInt32
                if let existing = dependencyFrames[dependency] {
                    frame = existing
                } else {
                    frames.append(value)
                    frame = UInt32(frames.count)
                    dependencyFrames[dependency] = frame
                }
                var resolved = Shoal_V1_ResolvedDependency()
                resolved.objectID = dependency
                resolved.frame = frame
                spec.dependencies.append(resolved)
            }
            task.leaseID = leaseID
            task.sentAt = now
            tasks[id] = task
            if lease.inFlight.isEmpty { lease.lastProgress = now }
            lease.inFlight.insert(id)
            push.tasks.append(spec)
        }
        leases[leaseID] = lease
        if batch.count < 4 { logger.trace("tasks sent", metadata: ["lease": "\(leaseID)", "tasks": "\(batch)"]) }
        // With a task or two in flight a caller is most likely waiting on its result: poll for
        // the answer instead of paying to wake this thread when it comes.
        if leases.values.reduce(0, { $0 + $1.inFlight.count }) <= 2 {
            loop.pollBriefly(for: .microseconds(SpinSetting.waitMicroseconds))
        }
        do {
            try lease.socket.send(Envelope(0, .pushTasks(push)), payloads: frames)
        } catch {
            loseLease(leaseID, reason: "cannot send to its executor: \(error)")
        }
    }

    // MARK: receiving

    private func receiveFromHead(_ message: ShoalTransport.Message) {
        guard let incoming = try? Incoming(message, routed: false) else {
            logger.warning("malformed message from the head")
            return
        }
        let envelope = incoming.envelope
        if let continuation = replies.removeValue(forKey: envelope.requestID) {
            continuation.resume(returning: envelope)
            return
        }
        switch envelope.body {
        case .leaseGranted(let granted): leaseGranted(granted, requestID: envelope.requestID)
        case .leaseLost(let lost): loseLease(lost.leaseID, reason: lost.reason)
        case .actorState(let state): actorStateChanged(state)
        case .error(let error):
            if let shape = leaseRequests.removeValue(forKey: envelope.requestID) {
                queues[shape]?.outstandingRequests -= 1
                failQueued(shape, code: error.code == .infeasible ? .infeasible : .systemFailure, message: error.message)
            } else if envelope.requestID == 0 && error.code == .unknownPeer && !closed {
                // The answer to a heartbeat: the head ended this job (it heard nothing for too long).
                logger.error("the head ended this job", metadata: ["reason": "\(error.message)"])
                end(because: error.message, lost: true)
            } else {
                logger.warning("the head reported an error", metadata: ["error": "\(error.message)"])
            }
        default:
            break
        }
    }

    private func leaseGranted(_ granted: Shoal_V1_LeaseGranted, requestID: UInt64) {
        guard let shape = leaseRequests.removeValue(forKey: requestID) else {
            returnLease(granted.leaseID)
            return
        }
        queues[shape]?.outstandingRequests -= 1
        queues[shape]?.waitingSince = nil
        queues[shape]?.warnedAt = nil
        logger.debug(
            "lease granted", metadata: ["lease": "\(granted.leaseID)", "request": "\(requestID)", "node": "\(granted.nodeID)"])
        do {
            let leaseID = granted.leaseID
            let socket = try Connection(to: granted.executorAddress, on: loop, preferLocal: LocalLinkSetting.enabled) {
                [weak self] message in
                self?.assumeIsolated { $0.receiveResults(message, leaseID: leaseID) }
            }
            leases[leaseID] = Lease(id: leaseID, shape: shape, socket: socket, nodeID: granted.nodeID)
            pump()
        } catch {
            // Connecting fails only for an address libzmq cannot use or a process out of file
            // descriptors: asking again would only churn, so what waits for this shape fails.
            returnLease(granted.leaseID)
            failQueued(
                shape, code: .systemFailure,
                message: "cannot connect to the executor at \(granted.executorAddress) on node \(granted.nodeID): \(error)")
        }
    }

    private func returnLease(_ id: UInt64) {
        var returned = Shoal_V1_ReturnLease()
        returned.leaseID = id
        try? head.send(Envelope(0, .returnLease(returned)))
    }

    private func receiveResults(_ message: ShoalTransport.Message, leaseID: UInt64) {
        guard let incoming = try? Incoming(message, routed: false) else {
            logger.warning("malformed message from an executor", metadata: ["lease": "\(leaseID)"])
            return
        }
        if case .releaseBorrows(let release) = incoming.envelope.body {
            releaseBorrows(release.objectIds)
            return
        }
        guard case .taskResults(let results) = incoming.envelope.body else {
            logger.warning("unexpected message from an executor", metadata: ["lease": "\(leaseID)"])
            return
        }
        let now = ContinuousClock.now
        for result in results.results {
            // A late answer from an executor already given up on is dropped: each result once.
            guard let task = tasks[result.taskID], task.leaseID == leaseID else { continue }
            for id in result.borrowed { borrowCounts[id, default: 0] += 1 }
            leases[leaseID]?.inFlight.remove(result.taskID)
            leases[leaseID]?.idleSince = now
            leases[leaseID]?.lastProgress = now
            let seconds = Double((now - task.sentAt).milliseconds) / 1000 + 0.00005
            if queues[task.options.shape] != nil {
                let mean = queues[task.options.shape]?.meanSeconds
                queues[task.options.shape]?.meanSeconds = mean.map { 0.8 * $0 + 0.2 * seconds } ?? seconds
            }
            if result.hasFailure {
                let failure = result.failure
                if failure.applicationError && task.options.retryExceptions && task.retriesLeft > 0 {
                    retry(result.taskID)
                    continue
                }
                let code: TaskError.Code
                switch failure.errorType {
                case "CancellationError": code = .cancelled
                case "UnknownTask": code = .unknownTask
                case "BadInput": code = .badInput
                default: code = failure.applicationError ? .remote : .systemFailure
                }
                complete(
                    result.taskID,
                    .failed(TaskError(code, task: task.name, message: failure.message, errorType: failure.errorType)))
            } else if result.frame == 0 && result.hasLocation {
                complete(result.taskID, .ready(.stored(result.location)))
            } else {
                do {
                    complete(result.taskID, .ready(.inline(try incoming.payload(result.frame))))
                } catch {
                    complete(result.taskID, .failed(TaskError(.systemFailure, task: task.name, message: "\(error)")))
                }
            }
        }
        schedulePump()
    }

    private func retry(_ id: UInt64) {
        guard var task = tasks[id] else { return }
        task.retriesLeft -= 1
        task.leaseID = nil
        tasks[id] = task
        makeReady(id, shape: task.options.shape, front: true)
    }

    /// A lease's executor or node is gone: its in-flight tasks are retried or failed.
    private func loseLease(_ leaseID: UInt64, reason: String) {
        guard let lease = leases.removeValue(forKey: leaseID) else { return }
        lease.socket.close()
        logger.warning("lost a lease", metadata: ["lease": "\(leaseID)", "reason": "\(reason)"])
        for id in lease.inFlight.sorted().reversed() {
            guard let task = tasks[id] else { continue }
            if task.retriesLeft > 0 {
                retry(id)
            } else {
                complete(id, .failed(TaskError(.systemFailure, task: task.name, message: "\(reason); no retries left")))
            }
        }
        schedulePump()
    }

    private func failQueued(_ shape: TaskOptions.Shape, code: TaskError.Code, message: String) {
        guard var queue = queues[shape] else { return }
        while let id = queue.popFirst() {
            guard let task = tasks[id] else { continue }
            complete(id, .failed(TaskError(code, task: task.name, message: message)))
        }
        queue.waitingSince = nil
        queue.warnedAt = nil
        queues[shape] = queue
    }

    /// Records a task's outcome, wakes its waiters and moves its dependents on.
    private func complete(_ id: UInt64, _ state: ObjectEntry.State) {
        guard let task = tasks.removeValue(forKey: id) else { return }
        if let leaseID = task.leaseID { leases[leaseID]?.inFlight.remove(id) }
        finished += 1
        guard var entry = objects[id] else { return }
        entry.state = state
        let waiters = entry.waiters
        let dependents = entry.dependents
        entry.waiters = []
        entry.dependents = []
        if entry.released {
            objects[id] = nil
        } else {
            objects[id] = entry
        }
        for waiter in waiters {
            switch state {
            case .ready(let contents): waiter.continuation.resume(returning: contents)
            case .failed(let error): waiter.continuation.resume(throwing: error)
            case .pending: break
            }
        }
        for dependent in dependents {
            guard var next = tasks[dependent] else { continue }
            if case .failed(let error) = state {
                complete(dependent, .failed(TaskError(.dependencyFailed, task: next.name, message: error.description)))
                continue
            }
            next.unresolved -= 1
            tasks[dependent] = next
            if next.unresolved == 0 { makeReady(dependent, shape: next.options.shape) }
        }
    }

    // MARK: results

    /// An object's contents if its task has finished with a value.
    func readyContents(of id: ObjectID) -> ObjectContents? {
        if case .ready(let contents)? = objects[id]?.state { return contents }
        return nil
    }

    /// `readyContents(of:)` for code already on the driver's loop; nil elsewhere.
    nonisolated func readyContentsOnLoop(of id: ObjectID) -> ObjectContents? {
        guard loop.inLoop else { return nil }
        return assumeIsolated { $0.readyContents(of: id) }
    }

    /// Records a put value at once when called on the driver's loop.
    /// - Returns: false elsewhere (the caller then hops to the driver).
    nonisolated func recordOnLoop(_ id: ObjectID, _ contents: ObjectContents) -> Bool {
        guard loop.inLoop else { return false }
        assumeIsolated { $0.record(id, contents) }
        return true
    }

    /// Waits for an object's bytes.
    func value(of id: ObjectID, timeout: Duration?) async throws -> ObjectContents {
        if case .ready(let contents)? = objects[id]?.state { return contents }
        let token = nextWaiterToken
        nextWaiterToken += 1
        var timer: Int?
        defer { if let timer { loop.cancelTimer(timer) } }
        // Everything is checked again inside the continuation's body: it is the only place
        // guaranteed to run in one piece with the waiter's registration.
        return try await withCheckedThrowingContinuation { continuation in
            guard let entry = objects[id] else {
                continuation.resume(throwing: ClusterError.notFound("object \(id) is not owned by this driver"))
                return
            }
            switch entry.state {
            case .ready(let contents):
                continuation.resume(returning: contents)
                return
            case .failed(let error):
                continuation.resume(throwing: error)
                return
            case .pending:
                break
            }
            guard !closed else {
                continuation.resume(throwing: ClusterError.shutDown(closedReason))
                return
            }
            objects[id]?.waiters.append((token, continuation))
            if let timeout {
                timer = loop.schedule(after: timeout) { [weak self] in
                    self?.assumeIsolated { core in
                        guard let index = core.objects[id]?.waiters.firstIndex(where: { $0.token == token }) else { return }
                        let waiter = core.objects[id]?.waiters.remove(at: index)
                        waiter?.continuation.resume(
                            throwing: ClusterError.timeout("object \(id) was not ready within \(timeout)"))
                    }
                }
            }
        }
    }

    /// Waits for several objects' bytes, in order, in one call.
    func values(of ids: [ObjectID], timeout: Duration?) async throws -> [ObjectContents] {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        var values: [ObjectContents] = []
        values.reserveCapacity(ids.count)
        for id in ids {
            if case .ready(let contents)? = objects[id]?.state {
                values.append(contents)
            } else {
                values.append(try await value(of: id, timeout: deadline.map { max(.zero, $0 - .now) }))
            }
        }
        return values
    }

    /// Whether an object's task has finished (with a value or an error).
    func isFinished(_ id: ObjectID) -> Bool {
        switch objects[id]?.state {
        case .pending?: false
        default: true
        }
    }

    /// Waits until `count` of `ids` are finished or `timeout` passes.
    /// - Returns: the finished ids, in the order given.
    public func waitFinished(_ ids: [ObjectID], count: Int, timeout: Duration?) async -> [ObjectID] {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            let done = ids.filter { isFinished($0) }
            if done.count >= count { return done }
            if let deadline, ContinuousClock.now >= deadline { return done }
            // Wait for the first pending one to finish, or a slice of the timeout.
            guard let pending = ids.first(where: { !isFinished($0) }) else { return done }
            let slice: Duration = deadline.map { min(.milliseconds(100), $0 - .now) } ?? .seconds(3600)
            _ = try? await value(of: pending, timeout: max(slice, .milliseconds(1)))
        }
    }

    /// Cancels a task: dropped if still queued, interrupted if running.
    public func cancel(_ id: ObjectID) {
        guard let task = tasks[id] else { return }
        if let leaseID = task.leaseID, let lease = leases[leaseID] {
            var cancel = Shoal_V1_CancelTasks()
            cancel.taskIds = [id]
            try? lease.socket.send(Envelope(0, .cancelTasks(cancel)))
        } else {
            complete(id, .failed(TaskError(.cancelled, task: task.name, message: "cancelled before it ran")))
        }
    }

    nonisolated func releaseFromAnyThread(_ id: ObjectID) {
        loop.execute { [self] in self.assumeIsolated { $0.release(id) } }
    }

    /// Executors dropped references they had kept.
    func releaseBorrows(_ ids: [ObjectID]) {
        for id in ids {
            guard let count = borrowCounts[id] else { continue }
            if count > 1 {
                borrowCounts[id] = count - 1
            } else {
                borrowCounts[id] = nil
                if objects[id]?.released == true { release(id) }
            }
        }
    }

    private func release(_ id: ObjectID) {
        guard var entry = objects[id] else { return }
        if borrowCounts[id] != nil {
            // Still referenced from an executor: freed when the last borrow is released.
            entry.released = true
            objects[id] = entry
            return
        }
        switch entry.state {
        case .pending:
            entry.released = true
            objects[id] = entry
        case .ready(.stored(let location)):
            objects[id] = nil
            var free = Shoal_V1_FreeObjects()
            free.keys = [location.key]
            try? nodeSocket(for: location.nodeAddress)?.send(Envelope(0, .freeObjects(free)))
        default:
            objects[id] = nil
        }
    }

    // MARK: housekeeping

    private func heartbeat() {
        guard !closed else { return }
        var beat = Shoal_V1_DriverHeartbeat()
        let running = leases.values.reduce(0) { $0 + $1.inFlight.count }
        beat.tasksRunning = UInt64(running)
        beat.tasksQueued = UInt64(max(0, tasks.count - running))
        beat.tasksFinished = finished
        try? head.send(Envelope(0, .driverHeartbeat(beat)))
        warnAboutWaitingShapes()
        logger.debug(
            "driver state",
            metadata: [
                "tasks": "\(tasks.count)", "objects": "\(objects.count)", "leases": "\(leases.count)",
                "waiting": "\(objects.values.filter { !$0.waiters.isEmpty }.count)",
                "queued": "\(queues.values.map(\.count))", "outstanding": "\(queues.values.map(\.outstandingRequests))",
            ])
    }

    /// Tasks that have waited long for their first executor: say so (once, then every four
    /// times as long), as nothing else would tell the user why their `get` does not return.
    private func warnAboutWaitingShapes() {
        let now = ContinuousClock.now
        for (shape, queue) in queues {
            guard !queue.isEmpty, let since = queue.waitingSince, now - since >= config.leaseWaitWarning,
                queue.warnedAt.map({ now - $0 >= config.leaseWaitWarning * 4 }) ?? true,
                !leases.values.contains(where: { $0.shape == shape })
            else { continue }
            queues[shape]?.warnedAt = now
            let seconds = ((now - since).seconds * 10).rounded() / 10
            logger.warning(
                "tasks are waiting for an executor: no node has had room for them",
                metadata: [
                    "tasks": "\(queue.count)", "waited": "\(seconds) s", "resources": "\(shape.resources)",
                    "strategy": "\(shape.strategy)", "see": "cluster status (resources in use, placement groups)",
                ])
        }
    }

    private func returnIdleLeases() {
        let now = ContinuousClock.now
        for lease in leases.values where lease.inFlight.isEmpty && (queues[lease.shape]?.isEmpty ?? true) {
            guard now - lease.idleSince > config.leaseIdleTimeout else { continue }
            leases[lease.id] = nil
            lease.socket.close()
            logger.debug("lease returned", metadata: ["lease": "\(lease.id)"])
            returnLease(lease.id)
        }
    }

    // Handlers and timers hold this driver weakly, and do nothing once it is gone; one let go of
    // without `disconnect()` also stops its loop (waiting for it unless this is the loop's own
    // thread, which then runs no handler again). The head learns of the job's end from its
    // missing heartbeats.
    deinit { if ownsLoop { loop.shutdown() } }

    /// Returns every lease, tells the head the job is done, fails what still waits, and stops
    /// the loop.
    public func disconnect() {
        // After a lost head the handle is already closed, its loop still running so that later
        // calls could fail: only the loop is left to stop (`shutdown` runs once however asked).
        if !closed { end(because: "the cluster handle was shut down", lost: false) }
        let loop = self.loop
        // Give the disconnect a moment to leave before the socket closes with the loop; the
        // closure keeps this driver (which its handlers hold weakly) alive until then, however
        // soon its handle is dropped.
        loop.schedule(after: .milliseconds(20)) { withExtendedLifetime(self) { loop.shutdown() } }
    }

    /// Closes the leases, tells the head (unless it is lost), and fails everything still waiting
    /// with `reason`; later requests fail with it too. The loop keeps running until `disconnect`.
    private func end(because reason: String, lost: Bool) {
        closed = true
        closedReason = reason
        func failure(_ detail: String = "") -> ClusterError {
            lost ? .connectionFailed(reason + detail) : .shutDown(reason + detail)
        }
        for lease in leases.values {
            lease.socket.close()
        }
        leases.removeAll()
        if !lost { try? head.send(Envelope(0, .disconnectDriver(Shoal_V1_DisconnectDriver()))) }
        if let headMonitor {
            head.stopMonitoring()
            loop.unregister(headMonitor)
            headMonitor.close()
            self.headMonitor = nil
        }
        for (id, entry) in objects {
            for waiter in entry.waiters {
                waiter.continuation.resume(throwing: failure(" while object \(id) was pending"))
            }
            objects[id]?.waiters = []
        }
        for continuation in replies.values {
            continuation.resume(throwing: failure())
        }
        replies.removeAll()
        for pending in Array(actorCalls.values) + parkedActorCalls.values.flatMap({ $0 }) {
            pending.continuation.resume(throwing: failure())
        }
        actorCalls.removeAll()
        parkedActorCalls.removeAll()
        for socket in actorSockets.values { socket.close() }
        actorSockets.removeAll()
    }
}
