import Foundation
import Logging
import ShoalStorage

/// A head and one node daemon inside this process, on loopback: the embedded cluster that
/// `Cluster.connect()` starts when no cluster address is known. Executors are still separate
/// processes, started from this binary.
public final class LocalCluster: Sendable {
    public let head: Head
    public let node: NodeDaemon

    /// Starts the head and a node offering `cpus` CPUs (default: this machine's).
    public init(cpus: Int? = nil, gpus: Int? = nil, config: RuntimeConfig) async throws {
        // In this user's private session folder (not a folder every user shares).
        try Session().prepare()
        let session = Session(directory: Session().directory + "/local")
        try session.prepare()
        // The embedded head keeps a model registry that outlives the process, like MLflow's
        // default ./mlruns: a SQLite file and an artifact folder in the session folder.
        let registryFolder = Session().directory + "/embedded-registry"
        var registry: RegistryService?
        do {
            registry = try RegistryService(
                storage: .sqlite(path: registryFolder + "/registry.sqlite"),
                artifacts: try ArtifactStore(root: registryFolder + "/artifacts"), connections: 2)
        } catch {
            Logger(label: "shoal.local").warning(
                "the embedded cluster runs without a model registry",
                metadata: ["folder": "\(registryFolder)", "error": "\(error)"])
        }
        head = try await Head(
            bind: "tcp://127.0.0.1:0", advertisedHost: "127.0.0.1", sessionDirectory: session.directory, config: config,
            registry: registry)
        let resources = Resources(
            cpu: Double(cpus ?? ProcessInfo.processInfo.activeProcessorCount),
            gpu: Double(gpus ?? GPUDetection.visibleDevices().count),
            memory: Double(ProcessInfo.processInfo.physicalMemory) * 0.7)
        node = try await NodeDaemon(
            headAddress: head.address, nodeID: "local", resources: resources, host: "127.0.0.1",
            sessionDirectory: session.directory, config: config)
    }

    /// Stops the node (and its executors) and the head.
    public func shutdown() {
        node.shutdown()
        head.shutdown()
    }
}
