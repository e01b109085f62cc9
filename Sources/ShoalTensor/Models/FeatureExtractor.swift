import Foundation

/// Turns market windows into features for RL agents: the hybrid model's fused, CNN and LSTM
/// features at the last step, its classification confidence and its regression uncertainty
/// (Monte Carlo dropout), cached by the window's hash (least recently used out first). A window
/// the model cannot take (wrong shape, NaN or infinite values) gets basic indicators instead:
/// per feature, its last value, mean and standard deviation over the window.
public final class FeatureExtractor {
    public struct Features: Sendable, Equatable {
        public var fused: [Float]
        public var cnn: [Float]
        public var lstm: [Float]
        public var confidence: Float
        public var uncertainty: Float
        /// True when the model could not be used and `fused` holds the basic indicators.
        public var fallback: Bool
    }

    public let model: HybridModel
    public let capacity: Int
    public let passes: Int
    private var cache: [UInt64: Features] = [:]
    private var order: [UInt64] = []
    public private(set) var hits = 0
    public private(set) var misses = 0

    public init(model: HybridModel, capacity: Int = 1024, passes: Int = 10) {
        precondition(capacity > 0 && passes >= 2, "the cache needs room and Monte Carlo at least two passes")
        self.model = model
        self.capacity = capacity
        self.passes = passes
    }

    /// FNV-1a over the window's shape and bits.
    static func hash(_ window: Tensor) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for dimension in window.shape { hash = (hash ^ UInt64(dimension)) &* 0x100_0000_01b3 }
        for value in window.scalars { hash = (hash ^ UInt64(value.bitPattern)) &* 0x100_0000_01b3 }
        return hash
    }

    /// The features of a `[features, steps]` (or `[1, features, steps]`) window.
    public func extract(_ window: Tensor) -> Features {
        let key = Self.hash(window)
        if let cached = cache[key] {
            hits += 1
            if let position = order.firstIndex(of: key) { order.remove(at: position) }
            order.append(key)
            return cached
        }
        misses += 1
        let features = compute(window)
        cache[key] = features
        order.append(key)
        if order.count > capacity { cache[order.removeFirst()] = nil }
        return features
    }

    private func compute(_ window: Tensor) -> Features {
        let c = model.config
        let valid = window.count == c.features * c.steps && window.scalars.allSatisfy(\.isFinite)
        guard valid else { return Self.basicIndicators(window, features: c.features) }
        let input = window.reshaped([1, c.features, c.steps])
        let tape = Tape(recording: false)
        let output = model.forward(tape.variable(input), variables: model.variables(on: tape), training: false)
        func lastStep(_ variable: Variable) -> [Float] {
            let value = variable.value
            let width = value.shape[2]
            return Array(value.scalars[((value.shape[1] - 1) * width)..<(value.shape[1] * width)])
        }
        let prediction = model.monteCarlo(input, passes: passes)
        return Features(
            fused: lastStep(output.fused), cnn: lastStep(output.cnnFeatures), lstm: lastStep(output.lstmFeatures),
            confidence: prediction.confidence, uncertainty: prediction.regressionStandardDeviation, fallback: false)
    }

    static func basicIndicators(_ window: Tensor, features: Int) -> Features {
        let steps = max(1, window.count / max(1, features))
        var summary: [Float] = []
        for feature in 0..<features {
            let values = (0..<steps).compactMap { step -> Float? in
                let index = feature * steps + step
                return index < window.count && window.scalars[index].isFinite ? window.scalars[index] : nil
            }
            let mean = values.isEmpty ? 0 : values.reduce(0, +) / Float(values.count)
            let variance = values.isEmpty ? 0 : values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(values.count)
            summary += [values.last ?? 0, mean, variance.squareRoot()]
        }
        return Features(fused: summary, cnn: [], lstm: [], confidence: 0, uncertainty: .infinity, fallback: true)
    }
}
