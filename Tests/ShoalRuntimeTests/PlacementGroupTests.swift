import Foundation
import Shoal
import ShoalTestSupport
import Testing

@testable import ShoalRuntime

@Suite struct BundlePlacerTests {
    let nodes = [
        BundlePlacer.Node(id: "a", available: Resources(cpu: 4)),
        BundlePlacer.Node(id: "b", available: Resources(cpu: 2)),
    ]
    let one = Resources(cpu: 1)

    @Test func strictPackPutsEveryBundleOnOneNode() {
        #expect(BundlePlacer.place([one, one, one], strategy: .strictPack, on: nodes) == ["a", "a", "a"])
        #expect(BundlePlacer.place([Resources(cpu: 3), Resources(cpu: 3)], strategy: .strictPack, on: nodes) == nil)
    }

    @Test func packSpillsOverOnlyWhenItMust() {
        #expect(BundlePlacer.place([Resources(cpu: 3), Resources(cpu: 2)], strategy: .pack, on: nodes) == ["a", "b"])
        #expect(BundlePlacer.place([one, one], strategy: .pack, on: nodes) == ["a", "a"])
    }

    @Test func strictSpreadNeedsADistinctNodePerBundle() {
        let placed = BundlePlacer.place([one, one], strategy: .strictSpread, on: nodes)
        #expect(placed.map(Set.init) == ["a", "b"])
        #expect(BundlePlacer.place([one, one, one], strategy: .strictSpread, on: nodes) == nil)
        #expect(BundlePlacer.place([Resources(cpu: 3), Resources(cpu: 3)], strategy: .strictSpread, on: nodes) == nil)
    }

    @Test func spreadUsesEveryNodeThenShares() {
        let placed = BundlePlacer.place([one, one, one], strategy: .spread, on: nodes) ?? []
        #expect(Set(placed) == ["a", "b"])
        #expect(placed.count == 3)
    }
}

@Suite(.serialized) struct PlacementGroupIntegrationTests {
    @Test func bundlesReserveAtomicallyRunTheirTasksAndActorsAndFreeOnRemoval() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        try await cluster.addNode("second", cpus: 2)
        let driver = try cluster.driver(["pg"])
        #expect(try await driver.waitForExit(timeout: .seconds(120)) == 0)
        #expect(driver.line(startingWith: "strictSpread") == "strictSpread nodes=2")
        #expect(driver.line(startingWith: "bundles ran") == "bundles ran on their nodes=true")
        #expect(driver.line(startingWith: "actor in bundle") == "actor in bundle 1 on its node=true")
        #expect(driver.line(startingWith: "cpus reserved") == "cpus reserved=2 groups=1")
        #expect(driver.line(startingWith: "three on two nodes") == "three on two nodes: infeasible=true")
        #expect(driver.line(startingWith: "strictPack too big") == "strictPack too big: infeasible=true")
        #expect(driver.line(startingWith: "too big for its bundle") == "too big for its bundle: infeasible=true")
        #expect(driver.line(startingWith: "actor after removal") == "actor after removal: died=true")
        #expect(driver.line(startingWith: "after removal") == "after removal cpus reserved=0 groups=0")
        #expect(driver.line(startingWith: "strictPack nodes") == "strictPack nodes=1")
    }

    /// Tasks that no node has room for (a group holds every CPU) wait, the driver says so after
    /// `SHOAL_LEASE_WAIT_WARN_MS`, and they run once the room is there.
    @Test func tasksWaitingForRoomAreWarnedAboutAndRunOnceThereIsRoom() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(["waitwarn"], environment: ["SHOAL_LEASE_WAIT_WARN_MS": "400"])
        #expect(try await driver.waitForExit(timeout: .seconds(90)) == 0)
        let warnings = driver.output.filter { $0.contains("tasks are waiting for an executor") }
        // Once, then at four times the threshold while it still waits (a slow machine waits longer).
        #expect(!warnings.isEmpty, "\(driver.output.suffix(10))")
        #expect(warnings.first?.contains("resources=CPU=1") == true, "\(warnings)")
        #expect(driver.line(startingWith: "ran after removal") == "ran after removal on=head")
    }

    /// A node that stalls past the node timeout just after its bundle is reserved, while the
    /// bundle's first task is being placed on it, is declared dead and joins again: strict
    /// spread can put the bundle nowhere else, so it returns to the node, and its work runs there
    /// once it is back (a loaded CI machine once stalled a node this way and the job waited for ever).
    @Test func aBundleOnANodeThatStalledPastItsTimeoutRunsItsWorkOnceTheNodeRejoins() async throws {
        let cluster = try await ClusterProcesses(cpus: 2, nodeTimeoutMilliseconds: 2000)
        defer { cluster.stop() }
        let second = try await cluster.addNode("second", cpus: 2)
        let (driver, resume) = try await cluster.pausedDriver(["pg"], pausingAfter: "strictSpread")
        second.signal(SIGSTOP)
        resume()
        try await Task.sleep(for: .seconds(3))
        second.signal(SIGCONT)
        #expect(try await driver.waitForExit(timeout: .seconds(90)) == 0)
        #expect(driver.line(startingWith: "bundles ran") == "bundles ran on their nodes=true")
        #expect(driver.line(startingWith: "actor in bundle") == "actor in bundle 1 on its node=true")
        #expect(driver.line(startingWith: "cpus reserved") == "cpus reserved=2 groups=1")
        #expect(driver.line(startingWith: "after removal") == "after removal cpus reserved=0 groups=0")
        #expect(cluster.head.output.contains { $0.contains("node declared dead") }, "the stall outlasted the node timeout")
    }
}
