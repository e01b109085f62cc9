/// Runs an agent's deterministic policy on fresh episodes of an environment.
public enum Evaluation {
    /// Mean and standard deviation of the returns of `episodes` episodes, episode i reset with
    /// seed `seed + i`.
    public static func run<Base: Environment>(
        _ agent: any Agent, environment: Base, episodes: Int, seed: UInt64, deterministic: Bool = true
    ) -> (mean: Double, deviation: Double, returns: [Double]) {
        var environment = environment
        var returns: [Double] = []
        for episode in 0..<episodes {
            var observation = environment.reset(seed: seed &+ UInt64(episode))
            var total = 0.0
            while true {
                let outcome = environment.step(agent.act(observation, deterministic: deterministic))
                total += outcome.reward
                observation = outcome.observation
                if outcome.done { break }
            }
            returns.append(total)
        }
        let mean = returns.reduce(0, +) / Double(max(1, returns.count))
        let variance = returns.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, returns.count))
        return (mean, variance.squareRoot(), returns)
    }
}
