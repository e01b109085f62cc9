import Foundation
import ShoalBacktest
import ShoalRL

/// Trading signals from a trained agent: the agent runs through a whole span of its trading
/// environment (deterministic actions; the ensemble choosing by Thompson sampling as it goes),
/// and each bar's position becomes the target weight for the next. An ensemble's signals carry
/// how much its members disagreed; a single agent's are certain.
public enum AgentSignals {
    /// - Parameters:
    ///   - environment: an environment without episode length (it runs its whole span once).
    ///   - timestamps: the market's, by bar.
    ///   - invested: the weight a position of 1 stands for.
    public static func signals(
        agent: any Agent, environment: TradingEnvironment, symbol: String, timestamps: [Int64], invested: Double, version: String,
        seed: UInt64 = 0
    ) -> [TradingSignal] {
        var positions: [Double] = []
        var confidence: [Double] = []
        var disagreement: [Double] = []
        if let ensemble = agent as? Ensemble<TradingEnvironment> {
            let before = ensemble.history.count
            let steps = ensemble.run(environment, seed: seed)
            let decisions = Array(ensemble.history[before...])
            let discrete = environment.actionSpace.actions != nil
            for (step, decision) in zip(steps, decisions) {
                positions.append(step.info["position"] ?? 0)
                let total = Swift.max(decision.weights.reduce(0, +), 1e-12)
                if discrete {
                    let chosen = Int(decision.action.first ?? 1)
                    let share =
                        zip(decision.memberActions, decision.weights).filter { Int($0.0.first ?? -1) == chosen }.reduce(0) {
                            $0 + $1.1
                        } / total
                    confidence.append(share)
                    disagreement.append(1 - share)
                } else {
                    let sizes = decision.memberActions.map { Double($0.first ?? 0) }
                    let mean = zip(sizes, decision.weights).reduce(0) { $0 + $1.0 * $1.1 } / total
                    let spread = (zip(sizes, decision.weights).reduce(0) { $0 + $1.1 * ($1.0 - mean) * ($1.0 - mean) } / total)
                        .squareRoot()
                    confidence.append(Swift.max(0, 1 - spread))
                    disagreement.append(spread)
                }
            }
        } else {
            var running = environment
            var observation = running.reset(seed: seed)
            while true {
                let outcome = running.step(agent.act(observation, deterministic: true))
                positions.append(outcome.info["position"] ?? 0)
                confidence.append(1)
                disagreement.append(0)
                observation = outcome.observation
                if outcome.done { break }
            }
        }
        var previous = 0.0
        return positions.indices.map { step in
            let bar = environment.span.lowerBound + step
            let position = positions[step]
            defer { previous = position }
            let action: TradingSignal.Action = position > previous + 1e-12 ? .buy : position < previous - 1e-12 ? .sell : .hold
            return TradingSignal(
                bar: bar, timestamp: bar < timestamps.count ? timestamps[bar] : 0, instrument: symbol, action: action,
                targetWeight: position * invested, confidence: confidence[step], disagreement: disagreement[step],
                modelVersion: version)
        }
    }
}
