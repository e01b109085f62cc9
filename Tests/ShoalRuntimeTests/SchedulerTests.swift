import Testing

@testable import ShoalRuntime

@Suite struct SchedulerTests {
    func node(_ id: String, cpus: Double, free: Double, alive: Bool = true, custom: [String: Double] = [:]) -> Scheduler.Candidate
    {
        Scheduler.Candidate(
            nodeID: id, alive: alive, total: Resources(cpu: cpus, custom: custom),
            available: Resources(cpu: free, custom: custom))
    }

    @Test func packsUntilHalfFullThenSpreads() {
        let scheduler = Scheduler()
        let one = Resources(cpu: 1)
        #expect(
            scheduler.decide(one, strategy: .default, nodes: [node("a", cpus: 4, free: 3), node("b", cpus: 4, free: 4)])
                == .place(nodeID: "a"))
        #expect(
            scheduler.decide(one, strategy: .default, nodes: [node("a", cpus: 4, free: 2), node("b", cpus: 4, free: 4)])
                == .place(nodeID: "b"))
    }

    @Test func spreadPicksTheLeastLoadedNode() {
        let decision = Scheduler().decide(
            Resources(cpu: 1), strategy: .spread, nodes: [node("a", cpus: 4, free: 3), node("b", cpus: 4, free: 4)])
        #expect(decision == .place(nodeID: "b"))
    }

    @Test func waitsWhenBusyAndReportsInfeasibleAtOnce() {
        let scheduler = Scheduler()
        let nodes = [node("a", cpus: 2, free: 0), node("b", cpus: 2, free: 0, alive: true)]
        #expect(scheduler.decide(Resources(cpu: 1), strategy: .default, nodes: nodes) == .wait)
        if case .infeasible = scheduler.decide(Resources(cpu: 3), strategy: .default, nodes: nodes) {
        } else {
            Issue.record("3 CPUs on 2-CPU nodes should be infeasible")
        }
        if case .infeasible = scheduler.decide(Resources(cpu: 1, custom: ["tpu": 1]), strategy: .default, nodes: nodes) {
        } else {
            Issue.record("an unknown custom resource should be infeasible")
        }
    }

    @Test func deadNodesAreNeverChosen() {
        let nodes = [node("a", cpus: 8, free: 8, alive: false), node("b", cpus: 2, free: 2)]
        #expect(Scheduler().decide(Resources(cpu: 2), strategy: .spread, nodes: nodes) == .place(nodeID: "b"))
        if case .infeasible = Scheduler().decide(Resources(cpu: 4), strategy: .default, nodes: nodes) {
        } else {
            Issue.record("only a dead node could hold it")
        }
    }

    @Test func nodeAffinityHardAndSoft() {
        let nodes = [node("a", cpus: 2, free: 0), node("b", cpus: 2, free: 2)]
        let one = Resources(cpu: 1)
        #expect(Scheduler().decide(one, strategy: .nodeAffinity(nodeID: "a", soft: false), nodes: nodes) == .wait)
        #expect(Scheduler().decide(one, strategy: .nodeAffinity(nodeID: "a", soft: true), nodes: nodes) == .place(nodeID: "b"))
        #expect(Scheduler().decide(one, strategy: .nodeAffinity(nodeID: "b", soft: false), nodes: nodes) == .place(nodeID: "b"))
        if case .infeasible = Scheduler().decide(one, strategy: .nodeAffinity(nodeID: "zzz", soft: false), nodes: nodes) {
        } else {
            Issue.record("affinity to a missing node should be infeasible")
        }
    }

    @Test func resourcesValidateAndCompare() throws {
        #expect(Resources(cpu: 2, gpu: 1).covers(Resources(cpu: 1, gpu: 1)))
        #expect(!Resources(cpu: 2).covers(Resources(cpu: 1, gpu: 1)))
        #expect(throws: ClusterError.self) { try Resources(cpu: -1).validate() }
        #expect(throws: ClusterError.self) { try Resources(["x": .nan]).validate() }
        #expect((Resources(cpu: 3) - Resources(cpu: 1))[Resources.cpu] == 2)
    }

    @Test func runtimeConfigRejectsBadEnvironmentValues() throws {
        #expect(throws: ClusterError.self) { try RuntimeConfig.fromEnvironment(["SHOAL_NODE_TIMEOUT_MS": "soon"]) }
        #expect(throws: ClusterError.self) { try RuntimeConfig.fromEnvironment(["SHOAL_HEARTBEAT_MS": "-5"]) }
        #expect(throws: ClusterError.self) { try RuntimeConfig.fromEnvironment(["SHOAL_LEASE_WAIT_WARN_MS": "0"]) }
        let config = try RuntimeConfig.fromEnvironment(["SHOAL_NODE_TIMEOUT_MS": "1500", "SHOAL_LEASE_WAIT_WARN_MS": "250"])
        #expect(config.nodeTimeout == .milliseconds(1500))
        #expect(config.leaseWaitWarning == .milliseconds(250))
    }
}
