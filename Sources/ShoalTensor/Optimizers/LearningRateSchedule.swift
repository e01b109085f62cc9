import Foundation

/// Learning rate as a function of the step.
public enum LearningRateSchedule: Sendable, Equatable {
    case constant(Float)
    /// Multiplied by `factor` every `every` steps.
    case step(initial: Float, every: Int, factor: Float)
    /// Cosine from `initial` to `minimum` over `total` steps, after a linear warm-up of `warmup` steps.
    case cosine(initial: Float, minimum: Float, total: Int, warmup: Int)

    public func rate(at step: Int) -> Float {
        switch self {
        case .constant(let rate): return rate
        case .step(let initial, let every, let factor): return initial * pow(factor, Float(step / max(1, every)))
        case .cosine(let initial, let minimum, let total, let warmup):
            if step < warmup { return initial * Float(step + 1) / Float(warmup) }
            let progress = min(1, Float(step - warmup) / Float(max(1, total - warmup)))
            return minimum + 0.5 * (initial - minimum) * (1 + cos(Float.pi * progress))
        }
    }
}
