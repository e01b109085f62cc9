import ShoalMarket

/// The shape of observations or actions, as Gymnasium's spaces.
public enum Space: Sendable, Equatable, Codable {
    /// One of `n` actions, passed as a single value `0..<n`.
    case discrete(Int)
    /// A vector with per-element bounds.
    case box(low: [Float], high: [Float])

    /// A box of `dimension` elements, each in `low...high`.
    public static func box(dimension: Int, low: Float, high: Float) -> Space {
        .box(low: [Float](repeating: low, count: dimension), high: [Float](repeating: high, count: dimension))
    }

    /// Values in one sample: 1 for a discrete space, the vector's length for a box.
    public var dimension: Int {
        switch self {
        case .discrete: 1
        case .box(let low, _): low.count
        }
    }

    /// The number of actions of a discrete space (nil for a box).
    public var actions: Int? {
        if case .discrete(let n) = self { return n }
        return nil
    }

    /// Whether `value` belongs to the space.
    public func contains(_ value: [Float]) -> Bool {
        switch self {
        case .discrete(let n): value.count == 1 && value[0] == value[0].rounded() && (0..<Float(n)).contains(value[0])
        case .box(let low, let high):
            value.count == low.count && value.indices.allSatisfy { low[$0] <= value[$0] && value[$0] <= high[$0] }
        }
    }

    /// `value` clipped into a box (unchanged for a discrete space).
    public func clip(_ value: [Float]) -> [Float] {
        guard case .box(let low, let high) = self else { return value }
        return value.indices.map { Swift.min(Swift.max(value[$0], low[$0]), high[$0]) }
    }

    /// A uniformly random sample.
    public func sample(using generator: inout SeededGenerator) -> [Float] {
        switch self {
        case .discrete(let n): [Float(Int(generator.uniform() * Double(n)) % n)]
        case .box(let low, let high): low.indices.map { low[$0] + Float(generator.uniform()) * (high[$0] - low[$0]) }
        }
    }
}

/// What one step of an environment gives back (Gymnasium's `step` tuple).
public struct StepResult: Sendable {
    public var observation: [Float]
    public var reward: Double
    /// The episode ended inside the environment (the pole fell, the account is empty).
    public var terminated: Bool
    /// The episode was cut off from outside (a time limit): its value goes on.
    public var truncated: Bool
    public var info: [String: Double]

    public init(observation: [Float], reward: Double, terminated: Bool, truncated: Bool, info: [String: Double] = [:]) {
        self.observation = observation
        self.reward = reward
        self.terminated = terminated
        self.truncated = truncated
        self.info = info
    }

    public var done: Bool { terminated || truncated }
}

/// An environment after Gymnasium's `Env`: `reset(seed:)` starts an episode, `step(_:)` takes
/// an action (a discrete action as its index) and returns the next observation, the reward
/// and whether the episode terminated or was truncated.
public protocol Environment: Sendable {
    var observationSpace: Space { get }
    var actionSpace: Space { get }
    /// Starts an episode; a seed reseeds the environment's generator (as Gymnasium's), nil
    /// goes on with it.
    mutating func reset(seed: UInt64?) -> [Float]
    /// One step. Box actions outside their bounds are clipped (as Gymnasium's environments do).
    mutating func step(_ action: [Float]) -> StepResult
}

/// An environment that cannot be made or stepped, with the reason.
public struct EnvironmentError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
