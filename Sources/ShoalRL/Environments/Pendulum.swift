import Foundation
import ShoalMarket

/// Gymnasium's Pendulum-v1: swing a pendulum up and keep it upright with torque in [−2, 2].
/// Same constants and step as Gymnasium's, the torque terms in single precision as there;
/// observation (cos θ, sin θ, θ̇); never terminates, truncated at 200 steps.
public struct Pendulum: Environment {
    public static let maxSpeed = 8.0
    public static let maxTorque: Float = 2
    public static let dt = 0.05
    public static let gravity = 10.0
    public static let mass = 1.0
    public static let length = 1.0

    /// (theta, theta_dot) in double precision.
    public private(set) var state: (Double, Double) = (0, 0)
    public let maxSteps: Int
    public private(set) var elapsed = 0
    private var generator: SeededGenerator

    public var observationSpace: Space { .box(low: [-1, -1, -Float(Self.maxSpeed)], high: [1, 1, Float(Self.maxSpeed)]) }
    public var actionSpace: Space { .box(low: [-Self.maxTorque], high: [Self.maxTorque]) }

    public init(maxSteps: Int = 200, seed: UInt64 = 0) {
        self.maxSteps = maxSteps
        generator = SeededGenerator(seed: seed)
    }

    public var observation: [Float] { [Float(cos(state.0)), Float(sin(state.0)), Float(state.1)] }

    public mutating func reset(seed: UInt64? = nil) -> [Float] {
        if let seed { generator = SeededGenerator(seed: seed) }
        state = ((generator.uniform() * 2 - 1) * Double.pi, generator.uniform() * 2 - 1)
        elapsed = 0
        return observation
    }

    /// Starts an episode from a given state (to replay a recorded trace).
    public mutating func reset(state: (Double, Double)) -> [Float] {
        self.state = state
        elapsed = 0
        return observation
    }

    /// θ mapped into [−π, π).
    static func normalize(_ angle: Double) -> Double {
        let shifted = (angle + Double.pi).truncatingRemainder(dividingBy: 2 * Double.pi)
        return (shifted < 0 ? shifted + 2 * Double.pi : shifted) - Double.pi
    }

    public mutating func step(_ action: [Float]) -> StepResult {
        let (theta, thetaDot) = state
        let torque = Swift.min(Swift.max(action.first ?? 0, -Self.maxTorque), Self.maxTorque)
        let torqueCost = Double(Float(0.001) * (torque * torque))
        let cost = Self.normalize(theta) * Self.normalize(theta) + 0.1 * thetaDot * thetaDot + torqueCost
        let torqueTerm = Double(Float(3.0 / (Self.mass * Self.length * Self.length)) * torque)
        var newThetaDot = thetaDot + (3 * Self.gravity / (2 * Self.length) * sin(theta) + torqueTerm) * Self.dt
        newThetaDot = Swift.min(Swift.max(newThetaDot, -Self.maxSpeed), Self.maxSpeed)
        state = (theta + newThetaDot * Self.dt, newThetaDot)
        elapsed += 1
        return StepResult(observation: observation, reward: -cost, terminated: false, truncated: elapsed >= maxSteps)
    }
}
