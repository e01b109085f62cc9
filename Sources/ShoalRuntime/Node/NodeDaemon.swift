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
    private let executorSocket: Socket
    private let config: RuntimeConfig
    private let directory: String
    private var logger: Logger
    private var executors: [String: ExecutorEntry] = [:]
    private var nextExecutor = 1
    private var malformed: UInt64 = 0
    private var waitingForPackage: [String: [Shoal_V1_StartExecutor]] = [:]
    private var registered = false
    private let visibleGPUs: [String]
    /// Idle executors are kept this long for the job's next lease.
    private let idleExecutorLifetime: Duration = .seconds(30)

    /// Starts a node daemon and joins the head at `headAddress`.
    /// - Parameters:
    ///   - resources: what this node offers; GPUs default to the ones detected.
    ///   - host: the address other processes use to reach this machine.
    ///   - sessionDirectory: where the package cache and executor logs go.
    public init(
        headAddress: String, nodeID: String? = nil, resources: Resources, host: String,
        sessionDirectory: String, config: RuntimeConfig
    ) async throws {
        let loop = EventLoop(name: "shoal-node")
        self.loop = loop
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
        for sub in ["packages", "logs"] {
            try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true)
        }
        head = try Socket(.dealer)
        try head.setRoutingID("node:" + id)
        try head.setUnboundedQueues()
        try head.connect(headAddress)
        executorSocket = try Socket(.router)
        try executorSocket.setUnboundedQueues()
        let bound = try executorSocket.bind("tcp://\(host):0")
        address = bound
        start()
    }

    private func start() {
        loop.register(head) { [unowned self] message in self.assumeIsolated { $0.receiveFromHead(message) } }
        loop.register(executorSocket) { [unowned self] message in self.assumeIsolated { $0.receiveFromExecutor(message) } }
        loop.schedule(after: .zero, repeating: config.heartbeatInterval) { [unowned self] in
            self.assumeIsolated { $0.heartbeat() }
        }
        loop.schedule(after: .milliseconds(50), repeating: .milliseconds(50)) { [unowned self] in
            self.assumeIsolated { $0.reapExecutors() }
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

    /// Ends every executor and stops serving.
    public nonisolated func shutdown() {
        loop.execute { [self] in self.assumeIsolated { $0.killAllExecutors() } }
        loop.shutdown()
    }

    private func killAllExecutors() {
        for entry in executors.values { kill(entry.pid, SIGKILL) }
        for entry in executors.values { _ = ChildProcess.wait(for: entry.pid, timeout: .seconds(1)) }
        executors.removeAll()
    }

    private func heartbeat() {
        var beat = Shoal_V1_NodeHeartbeat()
        beat.nodeID = nodeID
        beat.executors = UInt32(executors.count)
        beat.malformedMessages = malformed
        beat.executorAddresses = executors.values.map(\.address).filter { !$0.isEmpty }.sorted()
        try? head.send(Envelope(0, .nodeHeartbeat(beat)))
        let now = ContinuousClock.now
        for entry in executors.values where entry.state == .idle && now - entry.idleSince > idleExecutorLifetime {
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
        case .releaseExecutor(let release):
            for (id, entry) in executors where entry.leaseID == release.leaseID {
                executors[id]?.leaseID = nil
                executors[id]?.state = .idle
                executors[id]?.idleSince = .now
            }
        case .endJob(let end):
            // The job is over: its executors end quietly, with no lease to report lost.
            for entry in executors.values where entry.jobID == end.jobID {
                executors[entry.id]?.leaseID = nil
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
                for entry in executors.values { kill(entry.pid, SIGKILL) }
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
                $0.state == .idle && $0.jobID == start.jobID && $0.package == start.packageSha256 && $0.gpuIDs.isEmpty
            })
        {
            executors[idle.id]?.state = .leased
            executors[idle.id]?.leaseID = start.leaseID
            reportStarted(executors[idle.id]!, leaseID: start.leaseID)
            return
        }
        guard FileManager.default.isExecutableFile(atPath: packagePath(start.packageSha256)) else {
            let first = waitingForPackage[start.packageSha256] == nil
            waitingForPackage[start.packageSha256, default: []].append(start)
            if first {
                var fetch = Shoal_V1_FetchPackage()
                fetch.sha256 = start.packageSha256
                try? head.send(Envelope(0, .fetchPackage(fetch)))
            }
            return
        }
        spawnExecutor(start)
    }

    private func storePackage(_ sha: String, bytes: [UInt8]) throws {
        guard SHA256.hexDigest(of: bytes) == sha else {
            throw MalformedMessage(reason: "package data does not hash to \(sha)")
        }
        let path = packagePath(sha)
        let temporary = path + ".partial-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes), attributes: [.posixPermissions: 0o755])
        else {
            throw MalformedMessage(reason: "cannot write \(temporary)")
        }
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: temporary, toPath: path)
        for start in waitingForPackage.removeValue(forKey: sha) ?? [] { spawnExecutor(start) }
    }

    private func failWaiting(_ sha: String, reason: String) {
        for start in waitingForPackage.removeValue(forKey: sha) ?? [] {
            reportExited(executorID: "", leaseID: start.leaseID, reason: "could not start: \(reason)")
        }
    }

    private func spawnExecutor(_ start: Shoal_V1_StartExecutor) {
        let id = "\(nodeID)-e\(nextExecutor)"
        nextExecutor += 1
        var environment = ProcessInfo.processInfo.environment
        environment["SHOAL_ROLE"] = "executor"
        environment["SHOAL_NODE_ADDRESS"] = address
        environment["SHOAL_NODE_ID"] = nodeID
        environment["SHOAL_EXECUTOR_ID"] = id
        environment["SHOAL_JOB_ID"] = start.jobID
        environment["SHOAL_HEAD_ADDRESS"] = start.headAddress
        environment["SHOAL_EXECUTOR_HOST"] = host
        let cpus = max(1, Int(Resources(start.resources)[Resources.cpu].rounded(.up)))
        for name in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"] where environment[name] == nil {
            environment[name] = String(cpus)
        }
        if !start.gpuIds.isEmpty {
            environment["CUDA_VISIBLE_DEVICES"] = start.gpuIds.map { index in
                Int(index) < visibleGPUs.count ? visibleGPUs[Int(index)] : String(index)
            }.joined(separator: ",")
        }
        do {
            let pid = try ChildProcess.spawn(
                packagePath(start.packageSha256), arguments: [], environment: environment,
                logPath: directory + "/logs/\(id).log")
            var entry = ExecutorEntry(id: id, pid: pid, jobID: start.jobID, package: start.packageSha256, gpuIDs: start.gpuIds)
            entry.leaseID = start.leaseID
            executors[id] = entry
        } catch {
            logger.error("cannot start an executor", metadata: ["error": "\(error)"])
            reportExited(executorID: id, leaseID: start.leaseID, reason: "could not start: \(error)")
        }
    }

    private func reportStarted(_ entry: ExecutorEntry, leaseID: UInt64) {
        var started = Shoal_V1_ExecutorStarted()
        started.leaseID = leaseID
        started.executorID = entry.id
        started.address = entry.address
        try? head.send(Envelope(0, .executorStarted(started)))
    }

    private func reportExited(executorID: String, leaseID: UInt64, reason: String) {
        var exited = Shoal_V1_ExecutorExited()
        exited.executorID = executorID
        exited.leaseID = leaseID
        exited.reason = reason
        try? head.send(Envelope(0, .executorExited(exited)))
    }

    private func reapExecutors() {
        while let (pid, reason) = ChildProcess.reapAny() {
            guard let entry = executors.values.first(where: { $0.pid == pid }) else { continue }
            executors[entry.id] = nil
            if let leaseID = entry.leaseID {
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
        guard case .executorHello(let hello) = incoming.envelope.body, var entry = executors[hello.executorID] else {
            malformed += 1
            try? executorSocket.send(.error(incoming.envelope.requestID, .unknownPeer, "unknown executor"), to: incoming.sender)
            return
        }
        entry.address = hello.address
        entry.state = .leased
        executors[hello.executorID] = entry
        if let leaseID = entry.leaseID { reportStarted(entry, leaseID: leaseID) }
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
