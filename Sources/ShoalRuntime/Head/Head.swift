import Foundation
import Logging
import ShoalStorage
import ShoalTransport
import ShoalWire

/// The head: knows the nodes, the jobs and their leases, schedules leases onto nodes, stores
/// job binaries, and finds dead nodes and drivers. It is never on the path of a task.
public actor Head {
    struct NodeEntry {
        var id: String
        var peer: [UInt8]
        var address: String
        var total: Resources
        var available: Resources
        var alive = true
        var lastSeen = ContinuousClock.now
        var executors: UInt32 = 0
        var malformed: UInt64 = 0
        var pid: Int32 = 0
        var executorAddresses: [String] = []
        var host = ""
        var objects = Shoal_V1_ObjectStoreStats()
    }

    struct JobEntry {
        var id: String
        var peer: [UInt8]
        var package: String
        var alive = true
        /// Why the head ended the job, told to a driver that still reports after it.
        var endReason = ""
        var lastSeen = ContinuousClock.now
        var stats = Shoal_V1_DriverHeartbeat()
        var leases: Set<UInt64> = []
    }

    struct LeaseEntry {
        var id: UInt64
        var jobPeer: [UInt8]
        var requestID: UInt64
        var nodeID: String
        var resources: Resources
        var executorID = ""
        var granted = false
        var gpuIDs: [UInt32] = []
        var placementGroup = ""
        var bundle = 0
        /// What the driver asked for, placed again as it was if the lease fails before it is granted.
        var request = Shoal_V1_RequestLease()
        /// Executors that failed to start for this request before this lease.
        var startFailures = 0
    }

    struct PendingLease {
        var peer: [UInt8]
        var requestID: UInt64
        var request: Shoal_V1_RequestLease
        /// Executors that failed to start for this request so far (its node dying does not count).
        var startFailures = 0
    }

    /// Executors that may fail to start for one lease request before the driver is told.
    static let executorStartAttempts = 3

    nonisolated let loop: EventLoop
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    /// The address nodes and drivers connect to, `tcp://host:port`.
    public nonisolated let address: String
    /// A ROUTER, and local links under `address` for clients on this host that ask for one
    /// (the registry's and the CLI's request channels); nodes and drivers use the ROUTER.
    let socket: RouterEndpoint
    let config: RuntimeConfig
    private let packageDirectory: String
    var logger: Logger
    let scheduler = Scheduler()

    var nodes: [String: NodeEntry] = [:]
    var nodeOrder: [String] = []
    var jobs: [[UInt8]: JobEntry] = [:]
    var leases: [UInt64: LeaseEntry] = [:]
    private var pending: [PendingLease] = []
    private var nextLeaseID: UInt64 = 1
    private var nextJobNumber = 1
    private var malformed: UInt64 = 0
    private var packageWaiters: [String: [(peer: [UInt8], requestID: UInt64)]] = [:]
    private var knownPackages: Set<String> = []
    var gpuInUse: [String: Set<UInt32>] = [:]
    var actors: [String: ActorRecord] = [:]
    var actorNames: [String: String] = [:]
    var pendingActors: [String] = []
    var placementGroups: [String: PlacementGroupRecord] = [:]
    var pendingGroups: [String] = []
    let jobBook: JobBook
    let actorStore: ActorStore
    /// The key-value store drivers keep state in (`Cluster.keyValues`).
    let keyValues: KeyValueStore
    /// Until then, detached actors rebuilt from the store wait for their nodes to rejoin.
    var recoveryDeadline = ContinuousClock.now + Head.actorRecoveryPeriod
    static let actorRecoveryPeriod: Duration = .seconds(30)
    /// Until then (`RuntimeConfig.firstNodeWait` after the start), while no node has joined this
    /// head (a cluster starting, or nodes rejoining a restarted head), requests that no node
    /// could hold wait instead of failing as infeasible against an empty cluster. Once one node
    /// has joined (or the time is up) they fail as before: a cluster whose last node died does
    /// not make them wait forever.
    var firstNodeDeadline = ContinuousClock.now
    private var aNodeJoined = false
    /// Set while a node's old self is ended for its new one to join: what that fails waits for
    /// the new one instead of being refused against a cluster that lacks it for a moment.
    var schedulingHeld = false
    /// Whether requests wait for the first node (see `firstNodeDeadline`).
    var waitingForFirstNode: Bool { !aNodeJoined && ContinuousClock.now < firstNodeDeadline }
    /// The model registry this head hosts, if any.
    public nonisolated let registry: RegistryService?

    /// Starts a head listening on `bind` (`tcp://0.0.0.0:6390`, port 0 for any).
    /// - Parameters:
    ///   - advertisedHost: the host name others use to reach it.
    ///   - sessionDirectory: where the package store lives.
    ///   - storage: the store that keeps the job table across restarts (a SQLite file or
    ///     PostgreSQL); nil keeps it in memory. Job folders (logs, working directories) go beside
    ///     a SQLite file, else in the session folder.
    ///   - maxWorkingDirSize: the largest job working directory accepted.
    public init(
        bind: String, advertisedHost: String, sessionDirectory: String, config: RuntimeConfig, storage: StorageLocation? = nil,
        maxWorkingDirSize: UInt64 = WorkingDirectoryArchive.defaultMaxSize, registry: RegistryService? = nil
    ) async throws {
        self.registry = registry
        self.config = config
        logger = Logger(label: "shoal.head")
        packageDirectory = sessionDirectory + "/packages"
        try FileManager.default.createDirectory(atPath: packageDirectory, withIntermediateDirectories: true)
        let stateFolder: String
        if case .sqlite(let path) = storage {
            stateFolder = (path as NSString).deletingLastPathComponent
        } else {
            stateFolder = sessionDirectory
        }
        do {
            jobBook = try JobBook(
                storage: storage ?? .sqlite(path: ":memory:"), directory: (stateFolder.isEmpty ? "." : stateFolder) + "/jobs",
                maxWorkingDirSize: maxWorkingDirSize)
            actorStore = try ActorStore(storage ?? .sqlite(path: ":memory:"))
            keyValues = try KeyValueStore(storage ?? .sqlite(path: ":memory:"))
        } catch {
            throw ClusterError.invalidArgument("the head's state store: \(error)")
        }
        let socket = try RouterEndpoint(binding: bind)
        self.socket = socket
        let port = socket.address.split(separator: ":").last.map(String.init) ?? "0"
        address = "tcp://\(advertisedHost):\(port)"
        // Made last: a loop's thread runs until it is shut down, and an init that throws never
        // reaches the deinit that would do it.
        loop = EventLoop(name: "shoal-head")
        start()
    }

    private func start() {
        recoverJobs()
        recoveryDeadline = .now + Self.actorRecoveryPeriod
        firstNodeDeadline = .now + config.firstNodeWait
        // Then what waited for a first node that never came fails as infeasible.
        loop.schedule(after: config.firstNodeWait + .milliseconds(10)) { [weak self] in
            self?.assumeIsolated { $0.schedulePending() }
        }
        recoverDetachedActors()
        registry?.scheduleUploadSweeps(on: loop)
        do {
            try socket.serve(on: loop, serveLocal: LocalLinkSetting.enabled, linkAddress: address) { [weak self] message in
                self?.assumeIsolated { $0.receive(message) }
            }
        } catch {
            // The ROUTER is served (registered before the links); only the links are missing.
            logger.warning("clients on this host will reach the head over ZeroMQ", metadata: ["error": "\(error)"])
        }
        loop.schedule(after: config.heartbeatInterval, repeating: config.heartbeatInterval / 2) { [weak self] in
            self?.assumeIsolated { $0.checkLiveness() }
        }
        logger.info("head listening", metadata: ["address": "\(address)"])
    }

    /// Stops serving and closes the socket.
    public nonisolated func shutdown() {
        loop.shutdown()
    }

    // Handlers and timers hold this head weakly, and do nothing once it is gone; a head let go of
    // without `shutdown()` also stops its loop (waiting for it unless this is the loop's own
    // thread, which then runs no handler again), so that its thread and socket end with it.
    deinit { loop.shutdown() }

    // MARK: receiving

    private func receive(_ message: ShoalTransport.Message) {
        let incoming: Incoming
        do {
            incoming = try Incoming(message, routed: true)
        } catch {
            malformed += 1
            if let peer = message.frames.first, !peer.isEmpty, message.frames.count > 1 {
                try? socket.send(.error(0, .malformed, "\(error)"), to: peer)
            }
            return
        }
        do {
            try handle(incoming)
        } catch let refused as JobRequestError {
            try? socket.send(.error(incoming.envelope.requestID, refused.code, refused.message), to: incoming.sender)
        } catch {
            malformed += 1
            try? socket.send(.error(incoming.envelope.requestID, .malformed, "\(error)"), to: incoming.sender)
        }
    }

    private func handle(_ incoming: Incoming) throws {
        let peer = incoming.sender
        let requestID = incoming.envelope.requestID
        if try handleJobMessage(incoming) { return }
        if try handleKeyValueMessage(incoming) { return }
        if case .artifactChunk(let chunk) = incoming.envelope.body {
            registry?.receive(chunk, bytes: try? incoming.payload(1), from: peer)
            return
        }
        if case .registryRequest(let request) = incoming.envelope.body {
            guard let registry else {
                try send(.error(requestID, .unavailable, "this head hosts no model registry"), to: peer)
                return
            }
            let loop = self.loop
            registry.dispatch(request, artifact: try? incoming.payload(1), requestID: requestID, peer: peer) {
                [weak self] envelope, payloads in
                loop.execute { [weak self] in
                    self?.assumeIsolated { try? $0.send(envelope, payloads: payloads, to: peer) }
                }
            }
            return
        }
        switch incoming.envelope.body {
        case .registerNode(let register): registerNode(register, peer: peer, requestID: requestID)
        case .nodeHeartbeat(let beat):
            guard var node = nodes[beat.nodeID], node.peer == peer else {
                try send(.error(requestID, .unknownPeer, "node \(beat.nodeID) is not registered"), to: peer)
                return
            }
            guard node.alive else {
                try send(.error(requestID, .unknownPeer, "node \(beat.nodeID) was declared dead"), to: peer)
                return
            }
            node.lastSeen = .now
            node.executors = beat.executors
            node.malformed = beat.malformedMessages
            node.executorAddresses = beat.executorAddresses
            node.objects = beat.objects
            nodes[beat.nodeID] = node
        case .executorStarted(let started): executorStarted(started, from: peer)
        case .executorExited(let exited): executorExited(exited, from: peer)
        case .fetchPackage(let fetch): try sendPackage(fetch.sha256, to: peer, requestID: requestID)
        case .connectDriver(let connect): connectDriver(connect, peer: peer, requestID: requestID)
        case .uploadPackage(let upload): try storePackage(upload, data: incoming.payload(1), peer: peer, requestID: requestID)
        case .requestLease(let request):
            guard jobs[peer]?.alive == true else {
                try send(.error(requestID, .unknownPeer, "driver is not connected"), to: peer)
                return
            }
            requestLease(PendingLease(peer: peer, requestID: requestID, request: request))
        case .returnLease(let returned):
            if let lease = leases[returned.leaseID], lease.jobPeer == peer { endLease(returned.leaseID, notifyNode: true) }
        case .driverHeartbeat(let beat):
            guard var job = jobs[peer] else { return }
            guard job.alive else {
                // A driver that was silent too long (a stalled process) learns that its job is
                // over instead of waiting for leases the head has dropped.
                try send(.error(0, .unknownPeer, "job \(job.id) was ended by the head: \(job.endReason)"), to: peer)
                return
            }
            job.lastSeen = .now
            job.stats = beat
            jobs[peer] = job
        case .disconnectDriver: endJob(peer: peer, reason: "driver disconnected")
        case .statusRequest: try send(Envelope(requestID, .statusReply(status())), to: peer)
        case .createActor(let create):
            try createActor(create, arguments: incoming.payloads.first ?? [], peer: peer, requestID: requestID)
        case .actorStarted(let started): actorStarted(started, from: peer)
        case .lookupActor(let lookup): try lookupActor(lookup, peer: peer, requestID: requestID)
        case .killActor(let kill): try killActor(kill, peer: peer, requestID: requestID)
        case .createPlacementGroup(let create): try createPlacementGroup(create, peer: peer, requestID: requestID)
        case .removePlacementGroup(let remove):
            guard placementGroups[remove.placementGroupID] != nil else {
                try send(.error(requestID, .notFound, "no placement group \(remove.placementGroupID)"), to: peer)
                return
            }
            removePlacementGroup(remove.placementGroupID, reason: "was removed")
            try send(Envelope(requestID, .removePlacementGroup(remove)), to: peer)
            schedulePending()
        case .shutdownCluster:
            try send(Envelope(requestID, .shutdownCluster(Shoal_V1_ShutdownCluster())), to: peer)
            for node in nodes.values where node.alive {
                try? send(Envelope(0, .shutdownCluster(Shoal_V1_ShutdownCluster())), to: node.peer)
            }
        default:
            throw MalformedMessage(reason: "the head does not take \(String(describing: incoming.envelope.body).prefix(40))")
        }
    }

    func send(_ envelope: Envelope, payloads: [[UInt8]] = [], to peer: [UInt8]) throws {
        try socket.send(envelope, payloads: payloads, to: peer)
    }

    // MARK: nodes

    private func registerNode(_ register: Shoal_V1_RegisterNode, peer: [UInt8], requestID: UInt64) {
        let total = Resources(register.total)
        if let existing = nodes[register.nodeID], existing.alive {
            guard existing.peer == peer else {
                try? send(.error(requestID, .invalidArgument, "node id \(register.nodeID) is taken"), to: peer)
                return
            }
            if existing.pid == register.pid && existing.address == register.address {
                // Joined already: a node answered for each of several heartbeats sent while it
                // was declared dead joins once per answer. What it holds since the first stays counted.
                acceptRegistration(requestID, from: peer)
                return
            }
            // A new daemon under the same id (restarted before its old self timed out): what the
            // old one ran is gone with it.
            schedulingHeld = true
            declareNodeDead(register.nodeID, reason: "its daemon restarted (pid \(existing.pid) is now \(register.pid))")
            schedulingHeld = false
        }
        if nodes[register.nodeID] == nil { nodeOrder.append(register.nodeID) }
        nodes[register.nodeID] = NodeEntry(
            id: register.nodeID, peer: peer, address: register.address, total: total,
            available: total, pid: register.pid, host: register.host)
        gpuInUse[register.nodeID] = []
        aNodeJoined = true
        acceptRegistration(requestID, from: peer)
        logger.info("node joined", metadata: ["node": "\(register.nodeID)", "resources": "\(total)"])
        schedulePending()
    }

    private func acceptRegistration(_ requestID: UInt64, from peer: [UInt8]) {
        var reply = Shoal_V1_NodeRegistered()
        reply.heartbeatIntervalMs = UInt32(config.heartbeatInterval.milliseconds)
        try? send(Envelope(requestID, .nodeRegistered(reply)), to: peer)
    }

    private func checkLiveness() {
        let now = ContinuousClock.now
        for id in nodeOrder {
            guard let node = nodes[id], node.alive, now - node.lastSeen > config.nodeTimeout else { continue }
            declareNodeDead(id, reason: "no heartbeat for \(config.nodeTimeout)")
        }
        for (peer, job) in jobs where job.alive && now - job.lastSeen > config.driverTimeout {
            endJob(peer: peer, reason: "driver silent for \(config.driverTimeout)")
        }
    }

    private func declareNodeDead(_ id: String, reason: String) {
        guard var node = nodes[id] else { return }
        node.alive = false
        node.available = Resources()
        nodes[id] = node
        logger.warning("node declared dead", metadata: ["node": "\(id)", "reason": "\(reason)"])
        for lease in leases.values where lease.nodeID == id {
            failLease(lease.id, reason: "node \(id) died (\(reason))")
        }
        actorsOnDeadNode(id, reason: reason)
        // Last, once the leases and actors it ran have left its bundles.
        unplaceBundles(on: id)
        // Leases waiting for this node may now be infeasible.
        schedulePending()
    }

    // MARK: drivers and packages

    private func connectDriver(_ connect: Shoal_V1_ConnectDriver, peer: [UInt8], requestID: UInt64) {
        let jobID: String
        if !connect.jobID.isEmpty {
            jobID = connect.jobID
        } else {
            jobID = String(format: "job-%04d", nextJobNumber)
            nextJobNumber += 1
        }
        jobs[peer] = JobEntry(id: jobID, peer: peer, package: connect.packageSha256)
        var accepted = Shoal_V1_DriverAccepted()
        accepted.jobID = jobID
        accepted.packageNeeded = !hasPackage(connect.packageSha256)
        accepted.heartbeatIntervalMs = UInt32(config.heartbeatInterval.milliseconds)
        // The driver's object store: a node daemon on its machine, else the first node.
        let living = nodeOrder.compactMap { nodes[$0] }.filter(\.alive)
        if let local = living.first(where: { $0.host == connect.host }) ?? living.first {
            accepted.localNodeAddress = local.address
            accepted.localNodeID = local.id
        }
        try? send(Envelope(requestID, .driverAccepted(accepted)), to: peer)
        logger.info("driver connected", metadata: ["job": "\(jobID)", "pid": "\(connect.pid)"])
    }

    private func packagePath(_ sha: String) -> String { packageDirectory + "/" + sha }

    private func hasPackage(_ sha: String) -> Bool {
        if knownPackages.contains(sha) { return true }
        if FileManager.default.fileExists(atPath: packagePath(sha)) {
            knownPackages.insert(sha)
            return true
        }
        return false
    }

    private func storePackage(_ upload: Shoal_V1_UploadPackage, data: [UInt8], peer: [UInt8], requestID: UInt64) throws {
        guard SHA256.isHexDigest(upload.sha256) else {
            try send(.error(requestID, .invalidArgument, "'\(upload.sha256.prefix(80))' is not a SHA-256 hex digest"), to: peer)
            return
        }
        let actual = SHA256.hexDigest(of: data)
        guard actual == upload.sha256 else {
            try send(.error(requestID, .invalidArgument, "package bytes hash to \(actual), not \(upload.sha256)"), to: peer)
            return
        }
        do {
            try Files.replace(packagePath(upload.sha256), with: data)
        } catch {
            try send(.error(requestID, .unavailable, "cannot write the package store at \(packageDirectory): \(error)"), to: peer)
            return
        }
        knownPackages.insert(upload.sha256)
        var stored = Shoal_V1_PackageStored()
        stored.sha256 = upload.sha256
        try send(Envelope(requestID, .packageStored(stored)), to: peer)
    }

    private func sendPackage(_ sha: String, to peer: [UInt8], requestID: UInt64) throws {
        guard SHA256.isHexDigest(sha), hasPackage(sha), let bytes = Files.read(packagePath(sha)) else {
            try send(.error(requestID, .notFound, "no package \(sha.prefix(80)) in the store"), to: peer)
            return
        }
        var reply = Shoal_V1_PackageData()
        reply.sha256 = sha
        try send(Envelope(requestID, .packageData(reply)), payloads: [bytes], to: peer)
    }

    /// Ends every driver connection of job `id`.
    func endJob(id: String, reason: String) {
        for (peer, job) in jobs where job.id == id && job.alive { endJob(peer: peer, reason: reason) }
    }

    private func endJob(peer: [UInt8], reason: String) {
        guard var job = jobs[peer], job.alive else { return }
        job.alive = false
        job.endReason = reason
        jobs[peer] = job
        // Its waiting requests go first: ending a lease places waiting requests at once.
        pending.removeAll { $0.peer == peer }
        for leaseID in job.leases { endLease(leaseID, notifyNode: false) }
        actorsOfEndedJob(job.id)
        removeGroups(of: peer)
        var end = Shoal_V1_EndJob()
        end.jobID = job.id
        for node in nodes.values where node.alive {
            try? send(Envelope(0, .endJob(end)), to: node.peer)
        }
        logger.info("job ended", metadata: ["job": "\(job.id)", "reason": "\(reason)"])
        schedulePending()
    }

    // MARK: leases

    func candidates() -> [Scheduler.Candidate] {
        nodeOrder.compactMap { id in
            nodes[id].map { Scheduler.Candidate(nodeID: id, alive: $0.alive, total: $0.total, available: $0.available) }
        }
    }

    private static func strategy(_ request: Shoal_V1_RequestLease) -> TaskOptions.Strategy {
        switch request.strategy {
        case .spread: .spread
        case .nodeAffinity: .nodeAffinity(nodeID: request.nodeID, soft: request.soft)
        default: .default
        }
    }

    private func requestLease(_ lease: PendingLease) {
        let resources = Resources(lease.request.resources)
        do {
            try resources.validate()
        } catch {
            try? send(.error(lease.requestID, .invalidArgument, "\(error)"), to: lease.peer)
            return
        }
        if !tryPlace(lease) { pending.append(lease) }
    }

    /// Places a lease if a node can take it now; answers infeasible ones at once.
    /// - Returns: false when it must wait for resources.
    private func tryPlace(_ lease: PendingLease) -> Bool {
        let resources = Resources(lease.request.resources)
        var bundle: (group: String, index: Int)?
        let decision: Scheduler.Decision
        if !lease.request.placementGroupID.isEmpty {
            switch decideInGroup(resources, group: lease.request.placementGroupID, bundle: lease.request.bundleIndex) {
            case .infeasible(let why): decision = .infeasible(why)
            case .wait: decision = .wait
            case .place(let nodeID, let index):
                bundle = (lease.request.placementGroupID, index)
                decision = .place(nodeID: nodeID)
            }
        } else {
            decision = scheduler.decide(resources, strategy: Self.strategy(lease.request), nodes: candidates())
        }
        switch decision {
        // Not a request inside a placement group: an unknown group or bundle is refused at once.
        case .infeasible where waitingForFirstNode && lease.request.placementGroupID.isEmpty:
            return false
        case .infeasible(let why):
            try? send(.error(lease.requestID, .infeasible, why), to: lease.peer)
            return true
        case .wait:
            return false
        case .place(let nodeID):
            // A request of a job that has ended is dropped, never placed.
            guard var node = nodes[nodeID], var job = jobs[lease.peer], job.alive else { return true }
            let id = nextLeaseID
            nextLeaseID += 1
            var entry = LeaseEntry(id: id, jobPeer: lease.peer, requestID: lease.requestID, nodeID: nodeID, resources: resources)
            entry.request = lease.request
            entry.startFailures = lease.startFailures
            if let bundle {
                takeFromBundle(resources, group: bundle.group, bundle: bundle.index)
                entry.placementGroup = bundle.group
                entry.bundle = bundle.index
            } else {
                node.available = node.available - resources
                nodes[nodeID] = node
            }
            let gpus = Int(resources[Resources.gpu].rounded(.up))
            if gpus > 0 {
                let used = gpuInUse[nodeID, default: []]
                let free = (0..<UInt32(node.total[Resources.gpu])).filter { !used.contains($0) }
                entry.gpuIDs = Array(free.prefix(gpus))
                gpuInUse[nodeID, default: []].formUnion(entry.gpuIDs)
            }
            leases[id] = entry
            job.leases.insert(id)
            jobs[lease.peer] = job
            var start = Shoal_V1_StartExecutor()
            start.leaseID = id
            start.jobID = job.id
            start.packageSha256 = job.package
            start.resources = resources.proto
            start.gpuIds = entry.gpuIDs
            start.headAddress = address
            try? send(Envelope(0, .startExecutor(start)), to: node.peer)
            return true
        }
    }

    func schedulePending() {
        guard !schedulingHeld else { return }
        schedulePendingGroups()
        schedulePendingActors()
        guard !pending.isEmpty else { return }
        let waiting = pending
        pending.removeAll()
        for lease in waiting where !tryPlace(lease) { pending.append(lease) }
    }

    /// A lease's executor started: believed only from the node that holds the lease (a report
    /// from anyone else, a forged address for the driver to send its tasks to, changes nothing).
    private func executorStarted(_ started: Shoal_V1_ExecutorStarted, from peer: [UInt8]) {
        guard var lease = leases[started.leaseID], nodes[lease.nodeID]?.peer == peer else { return }
        lease.executorID = started.executorID
        lease.granted = true
        leases[started.leaseID] = lease
        var granted = Shoal_V1_LeaseGranted()
        granted.leaseID = lease.id
        granted.nodeID = lease.nodeID
        granted.executorID = started.executorID
        granted.executorAddress = started.address
        try? send(Envelope(lease.requestID, .leaseGranted(granted)), to: lease.jobPeer)
    }

    private func executorExited(_ exited: Shoal_V1_ExecutorExited, from peer: [UInt8]) {
        if exited.leaseID == 0 {
            actorHostExited(exited.executorID, reason: exited.reason, building: exited.startingActorIds, from: peer)
            return
        }
        guard let lease = leases[exited.leaseID], nodes[lease.nodeID]?.peer == peer else { return }
        let what = exited.executorID.isEmpty ? "the executor" : "executor \(exited.executorID)"
        failLease(exited.leaseID, reason: "\(what) \(exited.reason)", executorFailed: true)
    }

    /// Ends a lease whose executor or node died, telling its driver.
    /// - Parameter executorFailed: its executor ended (or never started) while its node lives:
    ///   counted against the request, which fails once `executorStartAttempts` executors could not start.
    func failLease(_ id: UInt64, reason: String, executorFailed: Bool = false) {
        guard let lease = leases[id] else { return }
        if lease.granted {
            var lost = Shoal_V1_LeaseLost()
            lost.leaseID = id
            lost.reason = reason
            try? send(Envelope(0, .leaseLost(lost)), to: lease.jobPeer)
        } else if executorFailed && lease.startFailures + 1 >= Self.executorStartAttempts {
            // An executor that cannot start (a missing library, a full disk, a binary that
            // exits at once) would be started again for ever: the driver learns why instead.
            try? send(
                .error(
                    lease.requestID, .unavailable,
                    "\(Self.executorStartAttempts) executors could not start on node \(lease.nodeID); the last: \(reason)"),
                to: lease.jobPeer)
        } else {
            // The driver still waits for this lease: place its request again, as it was made
            // (any bundle, a strategy, an affinity).
            pending.append(
                PendingLease(
                    peer: lease.jobPeer, requestID: lease.requestID, request: lease.request,
                    startFailures: lease.startFailures + (executorFailed ? 1 : 0)))
        }
        endLease(id, notifyNode: false)
    }

    private func endLease(_ id: UInt64, notifyNode: Bool) {
        guard let lease = leases.removeValue(forKey: id) else { return }
        jobs[lease.jobPeer]?.leases.remove(id)
        // A bundle keeps its reservation while its node is away: what the lease held goes back
        // to it even from a dead node, for the request placed again once the node rejoins.
        if !lease.placementGroup.isEmpty {
            returnToBundle(lease.resources, group: lease.placementGroup, bundle: lease.bundle)
        }
        if var node = nodes[lease.nodeID], node.alive {
            if lease.placementGroup.isEmpty { node.available = node.available + lease.resources }
            nodes[lease.nodeID] = node
            gpuInUse[lease.nodeID]?.subtract(lease.gpuIDs)
            if notifyNode {
                var release = Shoal_V1_ReleaseExecutor()
                release.leaseID = id
                try? send(Envelope(0, .releaseExecutor(release)), to: node.peer)
            }
        }
        schedulePending()
    }

    // MARK: status

    private func status() -> Shoal_V1_StatusReply {
        var reply = Shoal_V1_StatusReply()
        reply.headAddress = address
        reply.headMalformedMessages = malformed
        reply.pendingLeases = UInt32(pending.count)
        reply.placementGroups = UInt32(placementGroups.count)
        reply.pendingPlacementGroups = UInt32(pendingGroups.count)
        reply.groups = placementGroups.values.sorted { $0.id < $1.id }.map { placementGroupStatus($0) }
        reply.nodes = nodeOrder.compactMap { id in
            guard let node = nodes[id] else { return nil }
            var status = Shoal_V1_NodeStatus()
            status.nodeID = id
            status.address = node.address
            status.alive = node.alive
            status.total = node.total.proto
            status.available = node.available.proto
            status.executors = node.executors
            status.malformedMessages = node.malformed
            status.pid = node.pid
            status.executorAddresses = node.executorAddresses
            status.objects = node.objects
            return status
        }
        reply.jobs = jobs.values.sorted { $0.id < $1.id }.map { job in
            var status = Shoal_V1_JobStatus()
            status.jobID = job.id
            status.alive = job.alive
            status.tasksQueued = job.stats.tasksQueued
            status.tasksRunning = job.stats.tasksRunning
            status.tasksFinished = job.stats.tasksFinished
            status.leases = UInt32(job.leases.count)
            return status
        }
        return reply
    }
}
