import Foundation
import ShoalMarket

/// Gymnasium's CartPole-v1: the same constants, explicit Euler integration, termination and
/// 500-step time limit, so returns compare with published ones. Action 1 pushes the cart
/// right (+10 N), 0 left; reward 1 per step, the terminating one included.
public struct CartPole: Environment {
    public static let gravity = 9.8
    public static let cartMass = 1.0
    public static let poleMass = 0.1
    public static let totalMass = cartMass + poleMass
    public static let halfLength = 0.5
    public static let poleMassLength = poleMass * halfLength
    public static let force = 10.0
    public static let tau = 0.02
    public static let angleLimit = 12 * 2 * Double.pi / 360
    public static let positionLimit = 2.4

    /// (x, x_dot, theta, theta_dot), in double precision as Gymnasium keeps it.
    public private(set) var state: (Double, Double, Double, Double) = (0, 0, 0, 0)
    public let maxSteps: Int
    public private(set) var elapsed = 0
    private var generator: SeededGenerator

    public var observationSpace: Space {
        let high: [Float] = [
            Float(Self.positionLimit * 2), .greatestFiniteMagnitude, Float(Self.angleLimit * 2), .greatestFiniteMagnitude,
        ]
        return .box(low: high.map { -$0 }, high: high)
    }
    public var actionSpace: Space { .discrete(2) }

    public init(maxSteps: Int = 500, seed: UInt64 = 0) {
        self.maxSteps = maxSteps
        generator = SeededGenerator(seed: seed)
    }

    public var observation: [Float] { [Float(state.0), Float(state.1), Float(state.2), Float(state.3)] }

    public mutating func reset(seed: UInt64? = nil) -> [Float] {
        if let seed { generator = SeededGenerator(seed: seed) }
        func draw() -> Double { generator.uniform() * 0.1 - 0.05 }
        state = (draw(), draw(), draw(), draw())
        elapsed = 0
        return observation
    }

    /// Starts an episode from a given state (to replay a recorded trace).
    public mutating func reset(state: (Double, Double, Double, Double)) -> [Float] {
        self.state = state
        elapsed = 0
        return observation
    }

    public mutating func step(_ action: [Float]) -> StepResult {
        let (x, xDot, theta, thetaDot) = state
        let force = (action.first ?? 0) >= 0.5 ? Self.force : -Self.force
        let (cosine, sine) = (cos(theta), sin(theta))
        let temp = (force + Self.poleMassLength * thetaDot * thetaDot * sine) / Self.totalMass
        let thetaAcceleration =
            (Self.gravity * sine - cosine * temp)
            / (Self.halfLength * (4.0 / 3.0 - Self.poleMass * cosine * cosine / Self.totalMass))
        let xAcceleration = temp - Self.poleMassLength * thetaAcceleration * cosine / Self.totalMass
        state = (
            x + Self.tau * xDot, xDot + Self.tau * xAcceleration, theta + Self.tau * thetaDot,
            thetaDot + Self.tau * thetaAcceleration
        )
        elapsed += 1
        let terminated =
            state.0 < -Self.positionLimit || state.0 > Self.positionLimit || state.2 < -Self.angleLimit
            || state.2 > Self.angleLimit
        return StepResult(observation: observation, reward: 1, terminated: terminated, truncated: elapsed >= maxSteps)
    }
}
