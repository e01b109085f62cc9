/// Many copies of an environment stepped together, as Gymnasium's and Stable-Baselines3's
/// vectorised environments: an episode that ends is reset at once, its last observation kept
/// in `finalObservations` (to bootstrap a truncated episode's value) and its return and
/// length reported.
public struct VectorEnvironment<Base: Environment>: Sendable {
    public struct Step: Sendable {
        /// `[count × observation dimension]`: each copy's next observation (the first of a new
        /// episode where one ended).
        public var observations: [Float]
        public var rewards: [Double]
        public var terminated: [Bool]
        public var truncated: [Bool]
        /// The last observation of each episode that ended on this step, by copy.
        public var finalObservations: [Int: [Float]]
        /// Return and length of each episode that ended on this step.
        public var finishedEpisodes: [(environment: Int, episodeReturn: Double, length: Int)]
    }

    public private(set) var environments: [Base]
    public let observationDimension: Int
    public let actionDimension: Int
    /// `[count × observation dimension]`, the observations the next actions answer.
    public private(set) var observations: [Float]
    private var returns: [Double]
    private var lengths: [Int]

    public var count: Int { environments.count }
    public var observationSpace: Space { environments[0].observationSpace }
    public var actionSpace: Space { environments[0].actionSpace }

    /// `count` copies made by `make(i)`.
    public init(count: Int, make: (Int) -> Base) {
        precondition(count > 0, "a vectorised environment needs at least one copy")
        environments = (0..<count).map(make)
        observationDimension = environments[0].observationSpace.dimension
        actionDimension = environments[0].actionSpace.dimension
        observations = [Float](repeating: 0, count: count * observationDimension)
        returns = [Double](repeating: 0, count: count)
        lengths = [Int](repeating: 0, count: count)
    }

    /// Resets every copy, copy i with seed `seed + i`.
    @discardableResult
    public mutating func reset(seed: UInt64) -> [Float] {
        for index in environments.indices {
            let first = environments[index].reset(seed: seed &+ UInt64(index))
            observations.replaceSubrange(index * observationDimension..<(index + 1) * observationDimension, with: first)
            returns[index] = 0
            lengths[index] = 0
        }
        return observations
    }

    /// Steps every copy; `actions` is `[count × action dimension]`.
    public mutating func step(_ actions: [Float]) -> Step {
        precondition(actions.count == count * actionDimension, "\(actions.count) action values for \(count) environments")
        var result = Step(
            observations: [], rewards: [Double](repeating: 0, count: count), terminated: [Bool](repeating: false, count: count),
            truncated: [Bool](repeating: false, count: count), finalObservations: [:], finishedEpisodes: [])
        for index in environments.indices {
            let action = Array(actions[index * actionDimension..<(index + 1) * actionDimension])
            var outcome = environments[index].step(action)
            returns[index] += outcome.reward
            lengths[index] += 1
            result.rewards[index] = outcome.reward
            result.terminated[index] = outcome.terminated
            result.truncated[index] = outcome.truncated
            if outcome.done {
                result.finalObservations[index] = outcome.observation
                result.finishedEpisodes.append((index, returns[index], lengths[index]))
                returns[index] = 0
                lengths[index] = 0
                outcome.observation = environments[index].reset(seed: nil)
            }
            observations.replaceSubrange(
                index * observationDimension..<(index + 1) * observationDimension, with: outcome.observation)
        }
        result.observations = observations
        return result
    }
}
