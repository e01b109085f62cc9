import ArgumentParser
import Foundation
import Logging
import Shoal
import ShoalTransport

#if canImport(Glibc)
    import Glibc
#endif

struct StartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start the head (with a node daemon), or a node daemon that joins a head.",
        discussion: """
            Without --block the daemon is started in the background; the command returns once \
            it is ready and prints the head's address. `cluster stop` stops every daemon \
            started on this machine.
            """
    )

    @Flag(help: "Start the head and a node daemon on this machine.")
    var head = false

    @Option(help: "The head to join, HOST:PORT (for a node daemon).")
    var address: String?

    @Option(help: "The head's port (0 picks a free one; default 6390).")
    var port: Int?

    @Option(name: .customLong("node-ip-address"), help: "The address other machines reach this one at (default 127.0.0.1).")
    var nodeIPAddress: String?

    @Option(help: "A cluster file (cluster.yaml) with the head's address and each node's resources; flags win over it.")
    var config: String?

    @Option(name: .customLong("num-cpus"), help: "CPUs to offer (default: all).")
    var numCPUs: Double?

    @Option(name: .customLong("num-gpus"), help: "GPUs to offer (default: the ones detected).")
    var numGPUs: Double?

    @Option(help: "Memory to offer, in bytes (default: 70% of this machine's).")
    var memory: Double?

    @Option(help: #"Custom resources as JSON, e.g. '{"ssd": 1}'."#)
    var resources: String?

    @Option(
        name: .customLong("object-store-memory"),
        help: "Bytes of shared memory for the node's object store (default: 30% of memory).")
    var objectStoreMemory: UInt64?

    @Option(name: .customLong("node-id"), help: "This node's id (default: random).")
    var nodeID: String?

    @Option(
        help:
            "The head's store (job table, model registry): a SQLite file (default: state/head.sqlite in the session folder) or a postgres:// URL."
    )
    var storage: String?

    @Option(
        name: .customLong("max-working-dir-size"), help: "The largest job working directory the head accepts (default 512MiB).")
    var maxWorkingDirSize: String?

    @Option(help: "The model registry's artifact folder (default: artifacts/ beside a SQLite store, else in the session folder).")
    var artifacts: String?

    @Flag(name: .customLong("no-registry"), help: "Do not host the model registry in the head.")
    var noRegistry = false

    @Flag(help: "Stay in the foreground until stopped.")
    var block = false

    @Flag(
        help:
            "Encrypt and authenticate the cluster (CurveZMQ): the head makes a secret (cluster.secret in the session folder, mode 0600) and every process proves it."
    )
    var secure = false

    @Option(help: "The cluster's secret file (a joining node, or a head that should use a given one); implies --secure.")
    var secretFile: String?

    func validate() throws {
        guard head != (address != nil) else {
            throw ValidationError("give exactly one of --head and --address HOST:PORT")
        }
        if let port, !(0...65535).contains(port) {
            throw ValidationError("--port \(port) is not a TCP port (0 picks a free one)")
        }
        for (name, value) in [("--num-cpus", numCPUs), ("--num-gpus", numGPUs), ("--memory", memory)] {
            if let value, !(value >= 0 && value.isFinite) { throw ValidationError("\(name) must be a number >= 0") }
        }
        _ = try customResources()
        _ = try clusterFile()
        _ = try workingDirLimit()
        if let storage {
            do { _ = try StorageLocation(parsing: storage) } catch let error as StorageError {
                throw ValidationError("--storage: \(error.message)")
            }
        }
    }

    func workingDirLimit() throws -> UInt64 {
        guard let maxWorkingDirSize else { return WorkingDirectoryArchive.defaultMaxSize }
        guard let bytes = ByteSize.parse(maxWorkingDirSize) else {
            throw ValidationError("--max-working-dir-size '\(maxWorkingDirSize)' is not a size (examples: 100MiB, 1GiB)")
        }
        let most = UInt64(Socket.maxMessageSize) - (1 << 20)
        guard bytes <= most else {
            throw ValidationError(
                "--max-working-dir-size \(maxWorkingDirSize) is above \(most) bytes: a working directory travels as one message, "
                    + "and no socket takes one over 1 GiB")
        }
        return bytes
    }

    /// The head's store: the flag, the cluster file, or the session's default SQLite file.
    func storageLocation(session: Session, file: String?) throws -> StorageLocation {
        let location = try StorageLocation(parsing: storage ?? file ?? "state/head.sqlite")
        if case .sqlite(let path) = location, !path.hasPrefix("/") {
            return .sqlite(path: session.directory + "/" + path)
        }
        return location
    }

    func customResources() throws -> [String: Double] {
        guard let resources else { return [:] }
        do {
            return try JSONDecoder().decode([String: Double].self, from: Data(resources.utf8))
        } catch {
            throw ValidationError("--resources must be a JSON object of names to numbers, like '{\"ssd\": 1}': \(error)")
        }
    }

    /// The cluster file's entries for this machine, when one was given.
    func clusterFile() throws -> (head: ClusterConfig.HeadConfig, node: ClusterConfig.NodeConfig?, storage: String?)? {
        guard let config else { return nil }
        do {
            let loaded = try ClusterConfig.load(path: config)
            return (loaded.head, loaded.node(for: nodeIPAddress ?? (head ? loaded.head.host : "127.0.0.1")), loaded.storage)
        } catch let error as ClusterError {
            throw CommandFailure(error.message)
        }
    }

    func offered(_ file: ClusterConfig.NodeConfig?) throws -> Resources {
        var custom = file?.resources ?? [:]
        custom.merge(try customResources()) { $1 }
        return Resources(
            cpu: numCPUs ?? file?.cpus ?? Double(ProcessInfo.processInfo.activeProcessorCount),
            gpu: numGPUs ?? file?.gpus ?? Double(GPUDetection.visibleDevices().count),
            memory: memory ?? file?.memory.map { Double($0.bytes) } ?? Double(ProcessInfo.processInfo.physicalMemory) * 0.7,
            custom: custom)
    }

    func run() async throws {
        try refusePassword(inStore: storage)
        // What the daemons write (logs, job output, stores) is this user's alone.
        umask(0o077)
        let session = Session()
        do {
            try session.prepare()
        } catch let error as SessionError {
            throw ValidationError(error.description)
        }
        if secure || secretFile != nil {
            // Set before any socket exists; the node daemon's executors inherit it.
            let path = secretFile ?? session.directory + "/cluster.secret"
            if head && secretFile == nil {
                do { try ClusterKeys.create(path: path) } catch let error as ZMQError { throw ValidationError(error.message) }
            }
            do { _ = try ClusterKeys.load(path: path) } catch let error as ZMQError { throw ValidationError(error.message) }
            setenv(ClusterSecurity.variable, path, 1)
        }
        if block {
            try await runInForeground(session: session)
        } else {
            try startInBackground(session: session)
        }
    }

    private func runInForeground(session: Session) async throws {
        Shoal.setUpLogging(defaultLevel: .info)
        installStopSignalHandlers()
        let config = try RuntimeConfig.fromEnvironment(ProcessInfo.processInfo.environment)
        let file = try clusterFile()
        let host = nodeIPAddress ?? file?.node?.host ?? file?.head.host ?? "127.0.0.1"
        let port = self.port ?? file?.head.port ?? 6390
        var headServer: Head?
        let headAddress: String
        if head {
            let storage = try storageLocation(session: session, file: file?.storage)
            let registry = noRegistry ? nil : try openRegistry(storage: storage, artifacts: artifacts, session: session)
            let server = try await Head(
                bind: "tcp://\(host):\(port)", advertisedHost: host, sessionDirectory: session.directory, config: config,
                storage: storage, maxWorkingDirSize: try workingDirLimit(), registry: registry)
            headServer = server
            headAddress = server.address
            try session.writeHeadAddress(headAddress)
        } else {
            let given = address ?? ""
            headAddress = given.hasPrefix("tcp://") ? given : "tcp://" + given
            // Fail early and clearly when nothing answers there.
            _ = try ControlClient(address: headAddress).status(timeout: .seconds(10))
        }
        let node = try await NodeDaemon(
            headAddress: headAddress, nodeID: nodeID, resources: try offered(file?.node), host: host,
            sessionDirectory: session.directory, config: config,
            objectStoreMemory: objectStoreMemory ?? file?.node?.objectStoreMemory?.bytes ?? NodeDaemon.defaultObjectStoreMemory)
        try session.registerProcess(role: head ? "head" : "node")
        print(
            head
                ? "Shoal head started at \(headAddress) (node \(node.nodeID))" : "Shoal node \(node.nodeID) joined \(headAddress)"
        )
        flushStandardOutput()
        await waitForStopRequest()
        await headServer?.endSubmittedJobs()
        node.shutdown()
        headServer?.shutdown()
        session.unregisterProcess()
        if head { session.clearHeadAddress() }
    }

    private func startInBackground(session: Session) throws {
        let arguments = Array(CommandLine.arguments.dropFirst()) + ["--block"]
        let role = head ? "head" : "node"
        let logPath = session.logDirectory + "/\(role)-\(Int(Date().timeIntervalSince1970)).log"
        let pid = try ChildProcess.spawn(
            ChildProcess.currentExecutable, arguments: arguments, environment: ProcessInfo.processInfo.environment,
            logPath: logPath, newSession: true)
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if session.processes().contains(where: { $0.pid == pid }) {
                if head, let address = session.headAddress() {
                    print("Shoal head started at \(address)")
                    print("Connect drivers with SHOAL_ADDRESS=\(address), or from this machine with no address at all.")
                    let secretFile = ProcessInfo.processInfo.environment[ClusterSecurity.variable]
                    print(
                        "Join more nodes with: cluster start --address \(address.replacingOccurrences(of: "tcp://", with: ""))"
                            + (secretFile.map { " --secret-file \($0) (copied to the node, mode 0600)" } ?? ""))
                } else {
                    print("Shoal node joined (pid \(pid)); log: \(logPath)")
                }
                return
            }
            if let ended = ChildProcess.wait(for: pid, timeout: .milliseconds(50)) {
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw CommandFailure("the \(role) daemon \(ended) before it was ready:\n\(log.suffix(2000))")
            }
        }
        kill(pid, SIGKILL)
        throw ValidationError("the \(role) daemon was not ready within 30 s; see \(logPath)")
    }
}

/// The registry on `storage`, its artifacts in `artifacts` or beside the store.
func openRegistry(storage: StorageLocation, artifacts: String?, session: Session) throws -> RegistryService {
    let folder: String
    if let artifacts {
        folder = artifacts
    } else if case .sqlite(let path) = storage {
        folder = (path as NSString).deletingLastPathComponent + "/artifacts"
    } else {
        folder = session.directory + "/artifacts"
    }
    do {
        return try RegistryService(storage: storage, artifacts: try ArtifactStore(root: folder))
    } catch let error as RegistryError {
        throw ValidationError("the model registry: \(error.message)")
    } catch let error as StorageError {
        throw ValidationError("the model registry's store \(storage): \(error.message)")
    }
}

/// A store URL with a password is refused on the command line, where `ps` shows it to every
/// user: libpq takes the password from `PGPASSWORD` or `~/.pgpass` instead.
func refusePassword(inStore storage: String?) throws {
    guard let storage, storage.hasPrefix("postgres://") || storage.hasPrefix("postgresql://") else { return }
    let rest = storage.drop { $0 != "/" }.dropFirst(2)
    let authority = rest.prefix { $0 != "/" && $0 != "?" }
    guard let at = authority.lastIndex(of: "@") else { return }
    if authority[..<at].contains(":") {
        throw ValidationError(
            "the store URL carries a password, which a command line shows to every user of this machine: leave it out and "
                + "give it in PGPASSWORD or ~/.pgpass (libpq reads both)")
    }
}
