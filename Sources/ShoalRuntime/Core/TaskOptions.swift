import ShoalWire

/// How a task is scheduled and retried.
public struct TaskOptions: Sendable, Hashable {
    /// Where a task may run.
    public enum Strategy: Sendable, Hashable {
        /// Pack onto nodes until they are half used, then spread.
        case `default`
        /// The least loaded node that fits.
        case spread
        /// A named node; with `soft`, any node when that one cannot take it.
        case nodeAffinity(nodeID: String, soft: Bool)
        /// Inside a placement group's reservation: a given bundle, or any (nil).
        case placementGroup(id: String, bundle: Int?)
    }

    /// Resources held while the task runs. Default: one CPU.
    public var resources: Resources
    /// Times a task is retried after its executor or node dies. Default 3.
    public var maxRetries: Int
    /// Whether errors thrown by the task itself are retried too (within `maxRetries`).
    public var retryExceptions: Bool
    /// The placement strategy.
    public var strategy: Strategy

    public init(
        resources: Resources = Resources(cpu: 1), maxRetries: Int = 3, retryExceptions: Bool = false,
        strategy: Strategy = .default
    ) {
        self.resources = resources
        self.maxRetries = maxRetries
        self.retryExceptions = retryExceptions
        self.strategy = strategy
    }

    /// The lease shape: tasks with equal shapes share leased executors.
    struct Shape: Hashable {
        var resources: Resources
        var strategy: Strategy
    }

    var shape: Shape { Shape(resources: resources, strategy: strategy) }
}

extension TaskOptions.Strategy {
    /// The strategy's fields, as lease and actor requests carry them.
    var wire: (strategy: Shoal_V1_SchedulingStrategy, nodeID: String, soft: Bool, placementGroup: String, bundle: Int32) {
        switch self {
        case .default: (.default, "", false, "", -1)
        case .spread: (.spread, "", false, "", -1)
        case .nodeAffinity(let nodeID, let soft): (.nodeAffinity, nodeID, soft, "", -1)
        case .placementGroup(let group, let bundle): (.default, "", false, group, Int32(bundle ?? -1))
        }
    }
}
