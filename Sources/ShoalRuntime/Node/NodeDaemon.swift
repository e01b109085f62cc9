import Foundation
import Logging
import ShoalTransport
import ShoalWire

#if canImport(Glibc)
    import Glibc
#endif

/// A node daemon: offers one machine's resources to the head, and runs the executor processes
/// of the leases the head places here, each started from its job's binary.
public actor NodeDaemon {
    struct ExecutorEntry {
        enum State { case starting, leased, idle }
        var id: String
        var pid: pid_t
        var jobID: String
        var package: String
        var gpuIDs: [UInt32]
        var address = ""
        var leaseID: UInt64?
        var state = State.starting
        var idleSince = ContinuousClock.now
        /// Set for the executor that hosts a job's (or the detached) actors on this node.
        var actorHostKey: String?
    }

    /// Work that waits for a job's binary to arrive from the head.
    enum PendingStart {
        case lease(Shoal_V1_StartExecutor)
        case actor(Shoal_V1_StartActor, arguments: [UInt8])
    }

    nonisolated let loop: EventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    /// This node's id.
    public nonisolated let nodeID: String
    /// Where executors reach this daemon.
    public nonisolated let address: String
    /// The resources offered to the cluster.
    public nonisolated let resources: Resources

    private let headAddress: String
    private let host: String
    private let head: Socket
    let executorSocket: Socket
    let config: RuntimeConfig
    private let directory: String
    private var logger: Logger
    private var executors: [String: ExecutorEntry] = [:]
    private var nextExecutor = 1
    var malformed: UInt64 = 0
    private var waitingForPackage: [String: [PendingStart]] = [:]
    /// Actor host executors by key (job or "detached", and package), and actors waiting for
    /// their host to say hello.
    private var actorHosts: [String: String] = [:]
    private var actorsWaitingForHost: [String: [(Shoal_V1_StartActor, [UInt8])]] = [:]
    /// Actors sent to each host and not reported built yet: told to the head if the host exits.
    private var actorsBuildingOnHost: [String: Set<String>] = [:]
    private var registered = false
    private let visibleGPUs: [String]
    /// The node's object store, objects waiting to be sealed or pulled, and sockets to other
    /// node daemons for pulls.
    var objects: ObjectStore
    var objectWaiters: [String: [(peer: [UInt8], requestID: UInt64)]] = [:]
    var pulls: [String: ObjectPull] = [:]
    var peerNodes: [String: Socket] = [:]
    /// Idle executors are kept this long for the job's next lease.
    private let idleExecutorLifetime: Duration = .seconds(30)

    /// Starts a node daemon and joins the head at `headAddress`.
    /// - Parameters:
    ///   - resources: what this node offers; GPUs default to the ones detected.
    ///   - host: the address other processes use to reach this machine.
    ///   - sessionDirectory: where the package cache and executor logs go.
    /// - Parameter objectStoreMemory: bytes of shared memory for objects; past it, objects spill to disk.
    public init(
        headAddress: String, nodeID: String? = nil, resources: Resources, host: String,
        sessionDirectory: String, config: RuntimeConfig, objectStoreMemory: UInt64 = NodeDaemon.defaultObjectStoreMemory
    ) async throws {
        let id = nodeID ?? "node-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        self.nodeID = id
        self.headAddress = headAddress
        self.host = host
        self.config = config
        self.resources = resources
        visibleGPUs = GPUDetection.visibleDevices()
        logger = Logger(label: "shoal.node")
        logger[metadataKey: "node"] = "\(id)"
        directory = sessionDirectory + "/" + id
        for sub in ["packages", "logs"] { try Session.makePrivate(directory + "/" + sub) }
        // Unique per daemon: two embedded clusters in one process both name their node "local".
        let storeToken = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        objects = try ObjectStore(
            memoryDirectory: "/dev/shm/shoal-\(id)-\(storeToken)-\(getpid())", spillDirectory: directory + "/spill-\(storeToken)",
            capacity: objectStoreMemory
        )
        head = try Socket(.dealer)
        try head.setRoutingID("node:" + id)
        try head.setUnboundedQueues()
        try head.connect(headAddress)
        executorSocket = try Socket(.router)
        try executorSocket.setUnboundedQueues()
        let bound = try executorSocket.bind("tcp://\(host):0")
        address = bound
        // Made last: a loop's thread runs until it is shut down, and an init that throws never
        // reaches the deinit that would do it.
        loop = EventLoop(name: "shoal-node")
        start()
    }

    private func start() {
        loop.register(head) { [weak self] message in self?.assumeIsolated { $0.receiveFromHead(message) } }
        loop.register(executorSocket) { [weak self] message in self?.assumeIsolated { $0.receiveFromExecutor(message) } }
        loop.schedule(after: .zero, repeating: config.heartbeatInterval) { [weak self] in
            self?.assumeIsolated { $0.heartbeat() }
        }
        loop.schedule(after: .milliseconds(50), repeating: .milliseconds(50)) { [weak self] in
            self?.assumeIsolated { $0.reapExecutors() }
        }
        register()
    }

    private func register() {
        var register = Shoal_V1_RegisterNode()
        register.nodeID = nodeID
        register.address = address
        register.host = host
        register.total = resources.proto
        register.pid = getpid()
        try? head.send(Envelope(0, .registerNode(register)))
    }

    /// 30% of this machine's memory, like Ray's default.
    public static var defaultObjectStoreMemory: UInt64 { ProcessInfo.processInfo.physicalMemory / 10 * 3 }

    /// Ends every executor and stops serving.
    public nonisolated func shutdown() {
        loop.execute { [self] in self.assumeIsolated { $0.killAllExecutors() } }
        loop.shutdown()
    }

    // Handlers and timers hold this daemon weakly, and do nothing once it is gone; one let go of
    // without `shutdown()` also stops its loop (waiting for it unless this is the loop's own
    // thread, which then runs no handler again), frees its store's memory and ends its executors.
    deinit {
        loop.shutdown()
        objects.removeAll()
        Self.end(executors.values)
    }

    private func killAllExecutors() {
        objects.removeAll()
        forgetExecutors()
    }

    /// Ends every executor and forgets it, with the actor hosts and the actors waiting for them.
    private func forgetExecutors() {
        Self.end(executors.values)
        executors.removeAll()
        actorHosts.removeAll()
        actorsWaitingForHost.removeAll()
        actorsBuildingOnHost.removeAll()
    }

    /// Kills the executors and reaps them (a second at most each).
    private static func end(_ entries: some Collection<ExecutorEntry>) {
        for entry in entries { kill(entry.pid, SIGKILL) }
        for entry in entries { _ = ChildProcess.wait(for: entry.pid, timeout: .seconds(1)) }
    }

    private func heartbeat() {
        var beat = Shoal_V1_NodeHeartbeat()
        beat.nodeID = nodeID
        beat.executors = UInt32(executors.count)
        beat.malformedMessages = malformed
        beat.executorAddresses = executors.values.map(\.address).filter { !$0.isEmpty }.sorted()
        beat.objects.capacity = objects.capacity
        beat.objects.used = objects.used
        beat.objects.spilled = objects.spilledBytes
        beat.objects.objects = UInt64(objects.entries.count)
        beat.objects.spills = UInt64(objects.spills)
        beat.objects.restores = UInt64(objects.restores)
        try? head.send(Envelope(0, .nodeHeartbeat(beat)))
        abandonStalledPulls()
        let now = ContinuousClock.now
        for entry in executors.values
        where entry.state == .idle && entry.actorHostKey == nil && now - entry.idleSince > idleExecutorLifetime {
            kill(entry.pid, SIGKILL)
        }
    }

    // MARK: head

    private func receiveFromHead(_ message: ShoalTransport.Message) {
        let incoming: Incoming
        do {
            incoming = try Incoming(message, routed: false)
        } catch {
            malformed += 1
            return
        }
        switch incoming.envelope.body {
        case .nodeRegistered:
            registered = true
            logger.info("joined the head", metadata: ["head": "\(headAddress)"])
        case .startExecutor(let start): startExecutor(start)
        case .startActor(let start): startActor(start, arguments: incoming.payloads.first ?? [])
        case .stopActor(let stop):
            if let entry = executors[stop.executorID] {
                try? executorSocket.send(Envelope(0, .stopActor(stop)), to: Array(stop.executorID.utf8))
                // A process of the actor's own ends with it, quietly: the head already counts the actor gone.
                if let key = entry.actorHostKey, key.contains(Self.ownProcessMarker) {
                    actorHosts[key] = nil
                    executors[entry.id]?.actorHostKey = nil
                    kill(entry.pid, SIGKILL)
                }
            }
        case .releaseExecutor(let release):
            for (id, entry) in executors where entry.leaseID == release.leaseID {
                executors[id]?.leaseID = nil
                executors[id]?.state = .idle
                executors[id]?.idleSince = .now
            }
        case .endJob(let end):
            objects.free(jobID: end.jobID)
            // The job is over: its executors end quietly, with no lease to report lost.
            for entry in executors.values where entry.jobID == end.jobID {
                executors[entry.id]?.leaseID = nil
                if let key = entry.actorHostKey {
                    actorHosts[key] = nil
                    executors[entry.id]?.actorHostKey = nil
                }
                kill(entry.pid, SIGKILL)
            }
        case .packageData(let data):
            do {
                try storePackage(data.sha256, bytes: incoming.payload(1))
            } catch {
                malformed += 1
                failWaiting(data.sha256, reason: "\(error)")
            }
        case .shutdownCluster:
            logger.info("head asked the cluster to shut down")
            killAllExecutors()
            requestStop()
        case .error(let error):
            if error.code == .unknownPeer {
                // The head restarted or declared us dead: our executors' leases are gone.
                logger.warning("head does not know this node; joining again", metadata: ["reason": "\(error.message)"])
                // Ended and forgotten before the node joins again, so that no lease placed after
                // the rejoin is handed one of them, idle-looking but killed.
                forgetExecutors()
                // Starts that wait for a package were for leases and actors the head has given
                // up on too. A start after the rejoin fetches again (the head asked may be gone);
                // a fetch still in flight stores its package all the same.
                waitingForPackage.removeAll()
                register()
            } else if error.code == .notFound {
                for sha in waitingForPackage.keys { failWaiting(sha, reason: error.message) }
            } else {
                logger.warning("head reported an error", metadata: ["error": "\(error.message)"])
            }
        default:
            malformed += 1
        }
    }

    private func packagePath(_ sha: String) -> String { directory + "/packages/" + sha }

    private func startExecutor(_ start: Shoal_V1_StartExecutor) {
        if start.gpuIds.isEmpty,
            let idle = executors.values.first(where: {
                $0.state == .idle && $0.actorHostKey == nil && $0.jobID == start.jobID && $0.package == start.packageSha256
                    && $0.gpuIDs.isEmpty
            })
        {
            var reused = idle
            reused.state = .leased
            reused.leaseID = start.leaseID
            executors[idle.id] = reused
            reportStarted(reused, leaseID: start.leaseID)
            return
        }
        guard hasPackage(start.packageSha256, orWait: .lease(start)) else { return }
        spawnExecutor(start)
    }

    /// Whether the job's binary is cached; if not, fetches it and parks `pending` until then.
    private func hasPackage(_ sha: String, orWait pending: PendingStart) -> Bool {
        if FileManager.default.isExecutableFile(atPath: packagePath(sha)) { return true }
        let first = waitingForPackage[sha] == nil
        waitingForPackage[sha, default: []].append(pending)
        if first {
            var fetch = Shoal_V1_FetchPackage()
            fetch.sha256 = sha
            try? head.send(Envelope(0, .fetchPackage(fetch)))
        }
        return false
    }

    /// Marks an actor host that serves one actor only (`ActorOptions.ownProcess`).
    static let ownProcessMarker = "|own:"

    /// Builds an actor in this node's actor host for its job, starting the host if needed.
    private func startActor(_ start: Shoal_V1_StartActor, arguments: [UInt8]) {
        // Actors holding GPUs get a process of their own, which sees only those GPUs; so do
        // actors that ask for one.
        let gpuKey = start.gpuIds.isEmpty ? "" : "|gpu:" + start.gpuIds.map(String.init).joined(separator: ",")
        let ownKey = start.ownProcess ? Self.ownProcessMarker + start.actorID : ""
        let key = (start.detached ? "detached" : start.jobID) + "|" + start.packageSha256 + gpuKey + ownKey
        if let hostID = actorHosts[key], let host = executors[hostID] {
            if host.address.isEmpty {
                actorsWaitingForHost[hostID, default: []].append((start, arguments))
            } else {
                actorsBuildingOnHost[hostID, default: []].insert(start.actorID)
                try? executorSocket.send(Envelope(0, .startActor(start)), payloads: [arguments], to: Array(hostID.utf8))
            }
            return
        }
        guard hasPackage(start.packageSha256, orWait: .actor(start, arguments: arguments)) else { return }
        guard
            let hostID = launchExecutor(
                jobID: start.detached ? "detached" : start.jobID, package: start.packageSha256, cpus: 1,
                gpuIDs: start.gpuIds, headAddress: start.headAddress)
        else {
            var failed = Shoal_V1_ActorStarted()
            failed.actorID = start.actorID
            failed.error = "node \(nodeID) could not start an executor for actors"
            try? head.send(Envelope(0, .actorStarted(failed)))
            return
        }
        executors[hostID]?.actorHostKey = key
        executors[hostID]?.leaseID = nil
        actorHosts[key] = hostID
        actorsWaitingForHost[hostID, default: []].append((start, arguments))
    }

    private func storePackage(_ sha: String, bytes: [UInt8]) throws {
        guard SHA256.hexDigest(of: bytes) == sha else {
            throw MalformedMessage(reason: "package data does not hash to \(sha)")
        }
        do {
            try Files.replace(packagePath(sha), with: bytes, mode: 0o755)
        } catch {
            throw MalformedMessage(reason: "\(error)")
        }
        for pending in waitingForPackage.removeValue(forKey: sha) ?? [] {
            switch pending {
            case .lease(let start): spawnExecutor(start)
            case .actor(let start, let arguments): startActor(start, arguments: arguments)
            }
        }
    }

    private func failWaiting(_ sha: String, reason: String) {
        for pending in waitingForPackage.removeValue(forKey: sha) ?? [] {
            switch pending {
            case .lease(let start):
                reportExited(executorID: "", leaseID: start.leaseID, reason: "could not start: \(reason)")
            case .actor(let start, _):
                var failed = Shoal_V1_ActorStarted()
                failed.actorID = start.actorID
                failed.error = "could not start: \(reason)"
                try? head.send(Envelope(0, .actorStarted(failed)))
            }
        }
    }

    private func spawnExecutor(_ start: Shoal_V1_StartExecutor) {
        let cpus = max(1, Int(Resources(start.resources)[Resources.cpu].rounded(.up)))
        guard
            let id = launchExecutor(
                jobID: start.jobID, package: start.packageSha256, cpus: cpus, gpuIDs: start.gpuIds, headAddress: start.headAddress
            )
        else {
            reportExited(executorID: "", leaseID: start.leaseID, reason: "could not start an executor process")
            return
        }
        executors[id]?.leaseID = start.leaseID
    }

    /// Starts an executor process from a job's cached binary.
    /// - Returns: its id, or nil when the process could not start.
    private func launchExecutor(jobID: String, package: String, cpus: Int, gpuIDs: [UInt32], headAddress: String) -> String? {
        let id = "\(nodeID)-e\(nextExecutor)"
        nextExecutor += 1
        var environment = ProcessInfo.processInfo.environment
        environment["SHOAL_ROLE"] = "executor"
        environment["SHOAL_NODE_ADDRESS"] = address
        environment["SHOAL_NODE_ID"] = nodeID
        environment["SHOAL_EXECUTOR_ID"] = id
        environment["SHOAL_JOB_ID"] = jobID
        environment["SHOAL_HEAD_ADDRESS"] = headAddress
        environment["SHOAL_EXECUTOR_HOST"] = host
        for name in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"] where environment[name] == nil {
            environment[name] = String(cpus)
        }
        if !gpuIDs.isEmpty {
            environment["CUDA_VISIBLE_DEVICES"] = gpuIDs.map { index in
                Int(index) < visibleGPUs.count ? visibleGPUs[Int(index)] : String(index)
            }.joined(separator: ",")
        }
        do {
            let pid = try ChildProcess.spawn(
                packagePath(package), arguments: [], environment: environment, logPath: directory + "/logs/\(id).log")
            executors[id] = ExecutorEntry(id: id, pid: pid, jobID: jobID, package: package, gpuIDs: gpuIDs)
            return id
        } catch {
            logger.error("cannot start an executor", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func reportStarted(_ entry: ExecutorEntry, leaseID: UInt64) {
        var started = Shoal_V1_ExecutorStarted()
        started.leaseID = leaseID
        started.executorID = entry.id
        started.address = entry.address
        try? head.send(Envelope(0, .executorStarted(started)))
    }

    private func reportExited(executorID: String, leaseID: UInt64, reason: String, startingActors: [String] = []) {
        var exited = Shoal_V1_ExecutorExited()
        exited.executorID = executorID
        exited.leaseID = leaseID
        exited.reason = reason
        exited.startingActorIds = startingActors
        try? head.send(Envelope(0, .executorExited(exited)))
    }

    private func reapExecutors() {
        // Each executor by its pid: other children of this process (a head's job drivers) are
        // not ours to reap.
        for entry in executors.values {
            guard let reason = ChildProcess.reap(entry.pid) else { continue }
            executors[entry.id] = nil
            let waiting = actorsWaitingForHost.removeValue(forKey: entry.id)?.map(\.0.actorID) ?? []
            let building = actorsBuildingOnHost.removeValue(forKey: entry.id) ?? []
            if let key = entry.actorHostKey {
                actorHosts[key] = nil
                logger.warning("actor host exited", metadata: ["executor": "\(entry.id)", "reason": "\(reason)"])
                reportExited(executorID: entry.id, leaseID: 0, reason: reason, startingActors: waiting + building.sorted())
            } else if let leaseID = entry.leaseID {
                logger.warning("executor exited", metadata: ["executor": "\(entry.id)", "reason": "\(reason)"])
                reportExited(executorID: entry.id, leaseID: leaseID, reason: reason)
            }
        }
    }

    // MARK: executors

    private func receiveFromExecutor(_ message: ShoalTransport.Message) {
        guard let incoming = try? Incoming(message, routed: true) else {
            malformed += 1
            if let peer = message.frames.first, message.frames.count > 1 {
                try? executorSocket.send(.error(0, .malformed, "not a Shoal message"), to: peer)
            }
            return
        }
        do {
            if try handleObjectMessage(incoming) { return }
        } catch {
            malformed += 1
            try? executorSocket.send(.error(incoming.envelope.requestID, .invalidArgument, "\(error)"), to: incoming.sender)
            return
        }
        if case .actorStarted(let started) = incoming.envelope.body, executors[started.executorID] != nil {
            actorsBuildingOnHost[started.executorID]?.remove(started.actorID)
            try? head.send(Envelope(0, .actorStarted(started)))
            return
        }
        guard case .executorHello(let hello) = incoming.envelope.body, var entry = executors[hello.executorID] else {
            malformed += 1
            try? executorSocket.send(.error(incoming.envelope.requestID, .unknownPeer, "unknown executor"), to: incoming.sender)
            return
        }
        entry.address = hello.address
        entry.state = .leased
        executors[hello.executorID] = entry
        if let leaseID = entry.leaseID { reportStarted(entry, leaseID: leaseID) }
        for (start, arguments) in actorsWaitingForHost.removeValue(forKey: hello.executorID) ?? [] {
            actorsBuildingOnHost[hello.executorID, default: []].insert(start.actorID)
            try? executorSocket.send(Envelope(0, .startActor(start)), payloads: [arguments], to: Array(hello.executorID.utf8))
        }
    }
}

/// GPUs this machine shows: `CUDA_VISIBLE_DEVICES` when set, else what `nvidia-smi -L` lists.
public enum GPUDetection {
    /// The device ids CUDA programs on this machine may use, in order.
    public static func visibleDevices(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if let visible = environment["CUDA_VISIBLE_DEVICES"] {
            return visible.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        for path in ["/usr/bin/nvidia-smi", "/usr/local/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi"]
        where FileManager.default.isExecutableFile(atPath: path) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = ["-L"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return [] }
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let count = output.split(separator: "\n").filter { $0.hasPrefix("GPU ") }.count
            return (0..<count).map(String.init)
        }
        return []
    }
}
