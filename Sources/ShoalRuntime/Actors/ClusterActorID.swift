/// The identity of a distributed actor on a Shoal cluster: stable across restarts, so a
/// reference keeps working after the actor is rebuilt elsewhere.
public struct ClusterActorID: Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    static func random() -> ClusterActorID {
        ClusterActorID("actor-" + String(UInt64.random(in: 0...UInt64.max), radix: 16))
    }

    public var description: String { rawValue }
}

/// A call reached an actor that is dead: it failed with no restarts left, its job ended, or it
/// restarted while the call was in flight.
public struct ActorDiedError: Error, CustomStringConvertible, Sendable {
    /// The actor.
    public let actorID: ClusterActorID
    /// Why it is gone.
    public let reason: String

    public var description: String { "actor \(actorID) died: \(reason)" }
}

/// How an actor is placed, named, kept and restarted.
public struct ActorOptions: Sendable {
    /// How long an actor lives.
    public enum Lifetime: Sendable {
        /// Ends with the job that created it.
        case job
        /// Outlives its job, until the cluster stops.
        case detached
    }

    /// Resources the actor holds while alive. Default: none, so thousands can share a node.
    public var resources: Resources
    /// A name other drivers can find it by; unique among living actors.
    public var name: String?
    public var lifetime: Lifetime
    /// Times the actor is rebuilt (through its initialiser) after its process or node dies.
    public var maxRestarts: Int
    /// Times a call in flight when the actor died is sent again to its rebuilt self (Ray's
    /// `max_task_retries`); 0 fails such calls with `ActorDiedError`.
    public var maxTaskRetries: Int
    /// Calls it may run at once; 1 keeps each caller's calls in order.
    public var maxConcurrency: Int
    /// The placement strategy.
    public var strategy: TaskOptions.Strategy
    /// Hosted by an executor process of its own, as every Ray actor is: its crash takes no
    /// other actor down with it, and its process ends with it. Otherwise a job's actors on a
    /// node share one process (cheap: thousands fit).
    public var ownProcess: Bool

    public init(
        resources: Resources = Resources(), name: String? = nil, lifetime: Lifetime = .job, maxRestarts: Int = 0,
        maxTaskRetries: Int = 0, maxConcurrency: Int = 1, strategy: TaskOptions.Strategy = .default, ownProcess: Bool = false
    ) {
        self.ownProcess = ownProcess
        self.maxTaskRetries = maxTaskRetries
        self.resources = resources
        self.name = name
        self.lifetime = lifetime
        self.maxRestarts = maxRestarts
        self.maxConcurrency = maxConcurrency
        self.strategy = strategy
    }
}
