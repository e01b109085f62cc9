import Foundation
import Shoal
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The head, two node daemons and drivers as separate OS processes on loopback.
@Suite(.serialized) struct ClusterIntegrationTests {
    @Test func mapReduceDagOfTenThousandTasksRunsOnBothNodes() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        try await cluster.addNode("second", cpus: 2)
        // 5,000 squares reduced pairwise: 9,999 tasks, each merge depending on two others.
        let driver = try cluster.driver(["mapreduce", "5000"])
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0)
        let expected = (0..<5000).reduce(0) { $0 + $1 * $1 }
        let line = try #require(driver.line(startingWith: "sum="))
        #expect(line == "sum=\(expected) nodes=head,second")
    }

    @Test func aDriverWaitingWhenTheHeadDiesGetsAClearErrorAndExits() async throws {
        let cluster = try await ClusterProcesses()
        defer { cluster.stop() }
        let driver = try cluster.driver(["wait-long"])
        defer { driver.killTree() }
        _ = try await driver.waitForLine(startingWith: "waiting", timeout: .seconds(60))
        cluster.head.killTree()
        #expect(try await driver.waitForExit(timeout: .seconds(20)) == 3, "\(driver.output)")
        let lost = driver.line(startingWith: "lost:") ?? ""
        #expect(lost.contains("connection to the head at \(cluster.address) was lost"), "\(driver.output)")
        let after = driver.line(startingWith: "after:") ?? ""
        #expect(after.contains("connection to the head at \(cluster.address) was lost"), "later calls fail at once: \(driver.output)")
        #expect(driver.line(startingWith: "shut down") != nil, "shutting down returns: \(driver.output)")
    }

    @Test func tasksOnAKilledNodeAreRetriedAndEachResultArrivesOnce() async throws {
        let cluster = try await ClusterProcesses(cpus: 2, nodeTimeoutMilliseconds: 2000)
        defer { cluster.stop() }
        let victim = try await cluster.addNode("victim", cpus: 2)
        let driver = try cluster.driver(["slow", "2000"])
        _ = try await driver.waitForLine(startingWith: "progress 200", timeout: .seconds(120))
        let status = try cluster.status()
        #expect(status.nodes.first { $0.id == "victim" }?.executors ?? 0 > 0, "the victim node should be running executors")
        victim.killTree()
        #expect(try await driver.waitForExit(timeout: .seconds(240)) == 0)
        #expect(driver.line(startingWith: "done") == "done count=2000 distinct=2000 sum=\((0..<2000).reduce(0, +)) inorder=true")
        let after = try cluster.status()
        #expect(after.nodes.first { $0.id == "victim" }?.alive == false)
        #expect(after.nodes.first { $0.id == "head" }?.alive == true)
    }

    @Test func errorsTimeoutsCancellationAndWaitBehaveAcrossProcesses() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(["errors"])
        #expect(try await driver.waitForExit(timeout: .seconds(120)) == 0)
        #expect(driver.line(startingWith: "remote:") == "remote: isRemote=true task=test.fail message=bad tick at row 7")
        #expect(driver.line(startingWith: "infeasible:") == "infeasible: isInfeasible=true")
        #expect(driver.line(startingWith: "timeout:") == "timeout: isTimeout=true")
        #expect(driver.line(startingWith: "cancel:") == "cancel: isCancelled=true")
        #expect(driver.line(startingWith: "wait:")?.hasPrefix("wait: ready=true pending=true") == true)
        #expect(driver.line(startingWith: "dependency:") == "dependency: isDependencyFailure=true")
        #expect(driver.line(startingWith: "badoptions:") == "badoptions: isInvalidArgument=true")
    }
}
