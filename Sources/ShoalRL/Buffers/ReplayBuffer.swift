import Foundation
import ShoalMarket

/// A fixed-size store of transitions for off-policy learning; the oldest are overwritten once
/// it is full. Transitions are kept column by column in flat arrays (no per-transition
/// allocation); a sampled batch comes back the same way.
public struct ReplayBuffer: Sendable {
    public struct Batch: Sendable, Equatable {
        /// `[size × observation dimension]`.
        public var observations: [Float]
        /// `[size × action dimension]`.
        public var actions: [Float]
        public var rewards: [Float]
        public var nextObservations: [Float]
        /// 1 where the episode terminated after the transition (no bootstrapping), else 0.
        public var terminals: [Float]
        /// The discount to apply to the next observation's value (γⁿ for n-step transitions).
        public var discounts: [Float]
        /// Where each transition sits in the buffer (for priority updates).
        public var indices: [Int]
    }

    public let capacity: Int
    public let observationDimension: Int
    public let actionDimension: Int
    public private(set) var count = 0
    private var next = 0
    private var observations: [Float]
    private var actions: [Float]
    private var rewards: [Float]
    private var nextObservations: [Float]
    private var terminals: [Float]
    private var discounts: [Float]

    public init(capacity: Int, observationDimension: Int, actionDimension: Int) {
        precondition(capacity > 0, "a replay buffer needs room")
        self.capacity = capacity
        self.observationDimension = observationDimension
        self.actionDimension = actionDimension
        observations = [Float](repeating: 0, count: capacity * observationDimension)
        nextObservations = observations
        actions = [Float](repeating: 0, count: capacity * actionDimension)
        rewards = [Float](repeating: 0, count: capacity)
        terminals = rewards
        discounts = rewards
    }

    /// Stores a transition; returns its index.
    @discardableResult
    public mutating func add(
        observation: ArraySlice<Float>, action: ArraySlice<Float>, reward: Float, nextObservation: ArraySlice<Float>,
        terminal: Bool, discount: Float
    ) -> Int {
        let index = next
        observations.replaceSubrange(index * observationDimension..<(index + 1) * observationDimension, with: observation)
        nextObservations.replaceSubrange(index * observationDimension..<(index + 1) * observationDimension, with: nextObservation)
        actions.replaceSubrange(index * actionDimension..<(index + 1) * actionDimension, with: action)
        rewards[index] = reward
        terminals[index] = terminal ? 1 : 0
        discounts[index] = discount
        next = (next + 1) % capacity
        count = min(count + 1, capacity)
        return index
    }

    /// Stores transition `row` of transitions sampled elsewhere; returns its index.
    @discardableResult
    public mutating func add(_ row: Int, of transitions: Transitions, discount: Float) -> Int {
        let (width, actionWidth) = (transitions.observationDimension, transitions.actionDimension)
        return add(
            observation: transitions.observations[(row * width)..<((row + 1) * width)],
            action: transitions.actions[(row * actionWidth)..<((row + 1) * actionWidth)], reward: transitions.rewards[row],
            nextObservation: transitions.nextObservations[(row * width)..<((row + 1) * width)],
            terminal: transitions.terminals[row] == 1, discount: discount)
    }

    /// The transitions at `indices`.
    public func gather(_ indices: [Int]) -> Batch {
        var batch = Batch(
            observations: [], actions: [], rewards: [], nextObservations: [], terminals: [], discounts: [], indices: indices)
        batch.observations.reserveCapacity(indices.count * observationDimension)
        batch.nextObservations.reserveCapacity(indices.count * observationDimension)
        batch.actions.reserveCapacity(indices.count * actionDimension)
        for index in indices {
            batch.observations += observations[index * observationDimension..<(index + 1) * observationDimension]
            batch.nextObservations += nextObservations[index * observationDimension..<(index + 1) * observationDimension]
            batch.actions += actions[index * actionDimension..<(index + 1) * actionDimension]
            batch.rewards.append(rewards[index])
            batch.terminals.append(terminals[index])
            batch.discounts.append(discounts[index])
        }
        return batch
    }

    /// `size` transitions drawn uniformly (with replacement).
    public func sample(_ size: Int, using generator: inout SeededGenerator) -> Batch {
        precondition(count > 0, "sampling from an empty replay buffer")
        return gather((0..<size).map { _ in Int(generator.next() % UInt64(count)) })
    }
}

/// Prioritised experience replay (Schaul et al.): transitions drawn with probability
/// proportional to priority^α through a sum tree, with importance-sampling weights
/// (N · P(i))^−β normalised by their largest.
public struct PrioritizedReplay: Sendable {
    public let alpha: Float
    private var sums: [Double]
    private var minimums: [Double]
    private let leaves: Int
    public private(set) var largestPriority: Double = 1

    public init(capacity: Int, alpha: Float) {
        var leaves = 1
        while leaves < capacity { leaves *= 2 }
        self.leaves = leaves
        self.alpha = alpha
        sums = [Double](repeating: 0, count: 2 * leaves)
        minimums = [Double](repeating: .infinity, count: 2 * leaves)
    }

    /// Sets transition `index`'s priority (before the exponent α); nil gives it the largest seen.
    public mutating func setPriority(_ index: Int, _ priority: Double? = nil) {
        let raw = max(priority ?? largestPriority, 1e-6)
        largestPriority = max(largestPriority, raw)
        let value = Double(Foundation.pow(Float(raw), alpha))
        var node = index + leaves
        sums[node] = value
        minimums[node] = value
        node /= 2
        while node >= 1 {
            sums[node] = sums[2 * node] + sums[2 * node + 1]
            minimums[node] = min(minimums[2 * node], minimums[2 * node + 1])
            node /= 2
        }
    }

    /// `size` indices, one from each of `size` equal slices of the total priority, with their
    /// importance-sampling weights for `count` stored transitions.
    public func sample(
        _ size: Int, count: Int, beta: Float, using generator: inout SeededGenerator
    ) -> (indices: [Int], weights: [Float]) {
        let total = sums[1]
        precondition(total > 0 && count > 0, "sampling from an empty prioritised replay")
        var indices: [Int] = []
        var weights: [Float] = []
        let smallest = minimums[1] / total
        let largestWeight = Foundation.pow(Double(count) * smallest, Double(-beta))
        for slice in 0..<size {
            var target = (Double(slice) + generator.uniform()) * total / Double(size)
            var node = 1
            while node < leaves {
                if target <= sums[2 * node] || sums[2 * node + 1] == 0 {
                    node = 2 * node
                } else {
                    target -= sums[2 * node]
                    node = 2 * node + 1
                }
            }
            let index = min(node - leaves, count - 1)
            let probability = sums[index + leaves] / total
            indices.append(index)
            weights.append(Float(Foundation.pow(Double(count) * max(probability, 1e-12), Double(-beta)) / largestWeight))
        }
        return (indices, weights)
    }
}
