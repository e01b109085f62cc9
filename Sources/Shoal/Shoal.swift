// Shoal: the driver library. `import Shoal` is all a job needs: declare `RemoteTask`s, call
// `Shoal.bootstrap(tasks:)` first thing in `main`, then `Cluster.connect()`.
@_exported import ShoalRuntime
@_exported import ShoalStorage

import Foundation
import Logging
import Distributed
import Synchronization

/// Entry points for a Shoal binary.
public enum Shoal {
    private static let loggingReady = Mutex(false)

    /// Registers the binary's tasks and actor types and, in an executor process, serves them
    /// and never returns. Call it first in `main`, before any driver work.
    /// - Parameters:
    ///   - tasks: every task this binary can run.
    ///   - actors: every distributed actor type the cluster may build from this binary.
    public static func bootstrap(tasks: [any AnyRemoteTask], actors: [any AnyActorType] = []) async {
        let environment = ProcessInfo.processInfo.environment
        setUpLogging(defaultLevel: environment["SHOAL_ROLE"] == "executor" ? .warning : .notice)
        TaskRegistry.shared.register(tasks)
        ActorTypeRegistry.shared.register(actors)
        guard environment["SHOAL_ROLE"] == "executor" else { return }
        installStopSignalHandlers()
        guard let nodeAddress = environment["SHOAL_NODE_ADDRESS"], let executorID = environment["SHOAL_EXECUTOR_ID"] else {
            FileHandle.standardError.write(Data("shoal executor: SHOAL_NODE_ADDRESS and SHOAL_EXECUTOR_ID must be set\n".utf8))
            exit(2)
        }
        do {
            let service = try await ExecutorService(
                executorID: executorID, nodeAddress: nodeAddress, host: environment["SHOAL_EXECUTOR_HOST"] ?? "127.0.0.1",
                registry: .shared)
            await waitForStopRequest()
            _ = service
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("shoal executor \(executorID): \(error)\n".utf8))
            exit(1)
        }
    }

    /// Sets up swift-log once: to stderr, at `SHOAL_LOG_LEVEL` or `defaultLevel`.
    public static func setUpLogging(defaultLevel: Logger.Level) {
        let first = loggingReady.withLock { ready -> Bool in
            defer { ready = true }
            return !ready
        }
        guard first else { return }
        let level = ProcessInfo.processInfo.environment["SHOAL_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? defaultLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
