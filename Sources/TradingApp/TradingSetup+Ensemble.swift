import Foundation
import Shoal
import ShoalRL
import ShoalRollouts
import ShoalTensor

extension TradingSetup {
    /// The ensemble's members trained at once, one `MemberTrainer` actor each (a process of its
    /// own holding a CPU; with `runners`, each member also starts rollout workers of its own),
    /// then judged on the validation span after costs: a member that does not match holding
    /// cash there is left out (all left out: the ensemble holds cash).
    static func ensembleOnCluster(
        _ ensemble: Ensemble<TradingEnvironment>, kinds: [TradingAlgorithm], budgets: [Int], spec: TradingMarketSpec,
        validation: TradingEnvironment, cash: [Float], seed: UInt64, encoder: [UInt8]?, runners: RLSetup.Runners? = nil
    ) -> RLSetup.RunnerTraining {
        { cluster, options, _, _, _, progress, _ in
            var encoderRef: ObjectRef<[UInt8]>?
            if let encoder { encoderRef = try await cluster.put(encoder, inObjectStore: true) }
            let specs = zip(kinds, budgets).map { kind, budget in
                var member = MemberSpec(
                    algorithm: kind, market: spec, steps: budget, seed: seed, evaluationInterval: max(1000, budget / 10))
                if let runners {
                    var own = options
                    let ppoEnvironments = PPO<TradingEnvironment>.Config().environments
                    own.environmentsPerRunner =
                        runners.environmentsPerRunner ?? (kind == .ppo ? max(1, ppoEnvironments / runners.count) : 1)
                    member.runners = own
                }
                return member
            }
            let perMember = 1 + (runners.map { $0.count * options.cpusPerRunner } ?? 0)
            progress(
                "Members: " + zip(kinds, budgets).map { "\($0.rawValue) (\($1) steps)" }.joined(separator: ", ")
                    + ", trained at once, one actor each"
                    + (runners.map { ", each with \($0.count) rollout worker(s) of its own (\(perMember) CPUs a member)." } ?? ".")
            )
            let reference = encoderRef
            // As many members train at once as the cluster has free CPUs for; each actor ends as
            // soon as its member is trained, handing its CPUs to the next.
            let free = Int((try await cluster.status().aliveAvailable[Resources.cpu]).rounded(.down))
            let atOnce = max(1, min(specs.count, free / perMember))
            progress("\(atOnce) member(s) at a time on \(free) free CPU(s).")
            let trained = try await withThrowingTaskGroup(of: (Int, TrainedMember).self) { tasks in
                var next = 0
                func start(_ index: Int) {
                    let member = specs[index]
                    tasks.addTask {
                        let trainer = try await cluster.spawn(
                            MemberTrainer.actorType, 1, options: ActorOptions(resources: Resources(cpu: 1), ownProcess: true))
                        do {
                            let result = try await trainer.train(member, encoder: reference)
                            try? await cluster.kill(trainer)
                            return (index, result)
                        } catch {
                            try? await cluster.kill(trainer)
                            throw error
                        }
                    }
                }
                while next < atOnce {
                    start(next)
                    next += 1
                }
                var results = [TrainedMember?](repeating: nil, count: specs.count)
                for try await (index, result) in tasks {
                    results[index] = result
                    if next < specs.count {
                        start(next)
                        next += 1
                    }
                    progress(
                        String(
                            format: "Member %@ trained on %@ (pid %d) in %.1f s: validation eval %.1f after %d steps%@.",
                            result.algorithm.rawValue, result.node, result.pid, result.seconds,
                            result.curve.points.last?.evaluationMean ?? .nan, result.curve.points.last?.steps ?? 0,
                            runners.map { ", sampled by \($0.count) worker(s) of its own" } ?? ""))
                }
                return results.compactMap { $0 }
            }
            var curve = LearningCurve(algorithm: "ensemble", environment: "trading", seed: seed)
            for (member, result) in zip(ensemble.members, trained) {
                try member.restore(
                    try SafeTensors.decode(result.checkpoint, source: "\(result.algorithm.rawValue)'s checkpoint").tensors)
                curve.points += result.curve.points
            }
            // Judged after costs on the validation span, beside cash (a return of 0).
            var leftOut = Set<Int>()
            for (index, member) in ensemble.members.enumerated() {
                let (returns, activity) = OutOfSample.run(of: member, on: validation, seed: seed)
                let metrics = TradingMetrics(returns: returns, periodsPerYear: barsPerYear)
                let kept = metrics.totalReturn >= 0
                if !kept { leftOut.insert(index) }
                progress(
                    String(
                        format:
                            "Member %@ on the validation span: return %+.2f%%, %d trades, turnover %.4f a bar, costs %.2f%%: %@.",
                        ensemble.memberNames[index], metrics.totalReturn * 100, activity.trades, activity.turnoverPerBar,
                        activity.costs * 100, kept ? "kept" : "left out (it does not match holding cash)"))
            }
            ensemble.leaveOut(leftOut, idle: cash)
            if ensemble.idleAction != nil {
                progress("No member matches holding cash on the validation span: the ensemble holds cash.")
            }
            return curve
        }
    }
}
