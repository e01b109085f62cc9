import Foundation

/// Timings shared by the cluster's processes. Every value can be set from the environment
/// (`SHOAL_HEARTBEAT_MS`, `SHOAL_NODE_TIMEOUT_MS`, `SHOAL_DRIVER_TIMEOUT_MS`,
/// `SHOAL_LEASE_IDLE_MS`, `SHOAL_FIRST_NODE_WAIT_MS`, `SHOAL_LEASE_WAIT_WARN_MS`) so tests can
/// shorten them.
public struct RuntimeConfig: Sendable {
    /// How often nodes and drivers report to the head.
    public var heartbeatInterval: Duration = .milliseconds(500)
    /// Silence after which the head declares a node dead (default 3 s, within the 5 s goal).
    public var nodeTimeout: Duration = .seconds(3)
    /// Silence after which the head declares a driver gone and ends its job.
    public var driverTimeout: Duration = .seconds(15)
    /// How long a driver keeps an idle lease before returning it.
    public var leaseIdleTimeout: Duration = .milliseconds(300)
    /// Tasks sent to one leased executor before its results come back.
    public var pipelineDepth: Int = 32
    /// How long after a head starts, while no node has joined it yet, requests that no node
    /// could hold wait for one instead of failing as infeasible.
    public var firstNodeWait: Duration = .seconds(15)
    /// How long a driver's tasks wait for their first executor before it warns that no node has
    /// room for them (and again at four times that while they still wait).
    public var leaseWaitWarning: Duration = .seconds(30)

    public init() {}

    /// The defaults, overridden by the environment where set.
    /// - Throws: `ClusterError.invalidArgument` naming a variable that is not a positive integer.
    public static func fromEnvironment(_ environment: [String: String]) throws -> RuntimeConfig {
        var config = RuntimeConfig()
        func milliseconds(_ name: String) throws -> Duration? {
            guard let text = environment[name] else { return nil }
            guard let value = Int(text), value > 0 else {
                throw ClusterError.invalidArgument("\(name)=\(text) is not a positive number of milliseconds")
            }
            return .milliseconds(value)
        }
        if let value = try milliseconds("SHOAL_HEARTBEAT_MS") { config.heartbeatInterval = value }
        if let value = try milliseconds("SHOAL_NODE_TIMEOUT_MS") { config.nodeTimeout = value }
        if let value = try milliseconds("SHOAL_DRIVER_TIMEOUT_MS") { config.driverTimeout = value }
        if let value = try milliseconds("SHOAL_LEASE_IDLE_MS") { config.leaseIdleTimeout = value }
        if let value = try milliseconds("SHOAL_FIRST_NODE_WAIT_MS") { config.firstNodeWait = value }
        if let value = try milliseconds("SHOAL_LEASE_WAIT_WARN_MS") { config.leaseWaitWarning = value }
        return config
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number (for rates and reports).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// How long driver and executor loops poll before sleeping (`SHOAL_SPIN_US`, default 50 µs), and
/// how long a driver polls for the answer to a lone task (`SHOAL_WAIT_SPIN_US`, default 300 µs).
enum SpinSetting {
    static let waitMicroseconds: Int = {
        guard let text = ProcessInfo.processInfo.environment["SHOAL_WAIT_SPIN_US"], let value = Int(text), value >= 0 else {
            return 300
        }
        return value
    }()

    static let microseconds: Int = {
        guard let text = ProcessInfo.processInfo.environment["SHOAL_SPIN_US"], let value = Int(text), value >= 0 else {
            return 50
        }
        return value
    }()
}

/// Whether drivers reach executors on their own host over local links (Unix-domain streams read
/// by the loops themselves) instead of ZeroMQ: on by default, `SHOAL_LOCAL_LINKS=0` turns them off
/// (for comparing the two paths, or a host whose processes cannot share abstract socket names).
enum LocalLinkSetting {
    static let enabled: Bool = ProcessInfo.processInfo.environment["SHOAL_LOCAL_LINKS"] != "0"
}
