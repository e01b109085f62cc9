/// A failure of the cluster itself: connecting, bad arguments, a peer that went away.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    private enum Code: Sendable {
        case connectionFailed, invalidArgument, timeout, peerError, shutDown, notFound
    }

    private let code: Code
    /// What went wrong, in words.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The cluster could not be reached or joined.
    public static func connectionFailed(_ message: String) -> Self { Self(.connectionFailed, message) }
    /// An argument or configuration value is invalid.
    public static func invalidArgument(_ message: String) -> Self { Self(.invalidArgument, message) }
    /// A wait ran out of time.
    public static func timeout(_ message: String) -> Self { Self(.timeout, message) }
    /// A peer answered with an error.
    public static func peerError(_ message: String) -> Self { Self(.peerError, message) }
    /// The cluster handle was shut down.
    public static func shutDown(_ message: String) -> Self { Self(.shutDown, message) }
    /// A named thing does not exist.
    public static func notFound(_ message: String) -> Self { Self(.notFound, message) }

    public var isTimeout: Bool { code == .timeout }
    public var isInvalidArgument: Bool { code == .invalidArgument }

    public var description: String { message }
}

/// The failure of one task: thrown by the task itself, or a system failure that outlived its
/// retries, or the task could never run.
public struct TaskError: Error, CustomStringConvertible, Sendable {
    enum Code: String, Sendable {
        case remote, systemFailure, infeasible, cancelled, dependencyFailed, unknownTask, badInput
    }

    let code: Code
    /// The registered name of the task.
    public let taskName: String
    /// The remote error's message, or what the system saw.
    public let message: String
    /// The remote error's Swift type, when the task threw.
    public let errorType: String

    init(_ code: Code, task: String, message: String, errorType: String = "") {
        self.code = code
        self.taskName = task
        self.message = message
        self.errorType = errorType
    }

    /// The task ran and threw.
    public var isRemote: Bool { code == .remote }
    /// The task's executor or node died more often than `maxRetries` allowed.
    public var isSystemFailure: Bool { code == .systemFailure }
    /// No node of the cluster can ever provide the task's resources.
    public var isInfeasible: Bool { code == .infeasible }
    /// The task was cancelled.
    public var isCancelled: Bool { code == .cancelled }
    /// A task this one depends on failed.
    public var isDependencyFailure: Bool { code == .dependencyFailed }
    /// No task of that name is registered in the job's binary.
    public var isUnknownTask: Bool { code == .unknownTask }

    public var description: String {
        switch code {
        case .remote: "task '\(taskName)' failed: \(errorType.isEmpty ? "" : "\(errorType): ")\(message)"
        case .systemFailure: "task '\(taskName)' lost to a system failure: \(message)"
        case .infeasible: "task '\(taskName)' is infeasible: \(message)"
        case .cancelled: "task '\(taskName)' was cancelled"
        case .dependencyFailed: "task '\(taskName)' did not run: a dependency failed: \(message)"
        case .unknownTask: "task '\(taskName)' is not registered in the job's binary"
        case .badInput: "task '\(taskName)': \(message)"
        }
    }
}
