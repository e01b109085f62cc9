import Foundation
import Shoal
import ShoalTestSupport
import Testing

/// Distributed actors across separate OS processes: head, node daemons, drivers, executors.
@Suite(.serialized) struct ActorIntegrationTests {
    @Test func counterKeepsItsStateOverAThousandCallsAndErrorsAreTyped() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(["actors"])
        #expect(try await driver.waitForExit(timeout: .seconds(120)) == 0)
        #expect(driver.line(startingWith: "count=") == "count=1000")
        // ObjectRefs as arguments: a small one inline, a large one mapped from the store.
        #expect(driver.line(startingWith: "refs:") == "refs: small=500.0 large=262144.0")
        #expect(driver.line(startingWith: "fail:") == "fail: isRemote=true message=no such ticker")
        #expect(driver.line(startingWith: "infeasible:") == "infeasible: true")
        #expect(driver.line(startingWith: "killed:") == "killed: killed")
        // Borrowed references: the object outlives the driver's reference while the actor keeps it.
        #expect(driver.line(startingWith: "kept total=") == "kept total=2097152.0")
        #expect(driver.line(startingWith: "kept freed=") == "kept freed=1")
    }

    @Test func aSecondDriverFindsADetachedActorByName() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let first = try cluster.driver(["detached", "3", "ledger"])
        #expect(try await first.waitForExit(timeout: .seconds(60)) == 0)
        #expect(first.line(startingWith: "spawned ledger on") != nil)
        // The first job has ended; its detached actor has not.
        let second = try cluster.driver(["lookup", "10", "ledger"])
        #expect(try await second.waitForExit(timeout: .seconds(60)) == 0)
        #expect(second.line(startingWith: "found") == "found count=113")
        let missing = try cluster.driver(["lookup", "1", "nobody"])
        #expect(try await missing.waitForExit(timeout: .seconds(60)) != 0)
        #expect(missing.output.joined().contains("no actor with name 'nobody'"))
    }

    @Test func anActorOnAKilledNodeRestartsElsewhereOrReportsItsDeath() async throws {
        let cluster = try await ClusterProcesses(cpus: 2, nodeTimeoutMilliseconds: 2000)
        defer { cluster.stop() }
        let victim = try await cluster.addNode("victim", cpus: 2)
        let driver = try cluster.driver(["restart", "0", "victim"])
        _ = try await driver.waitForLine(startingWith: "ready", timeout: .seconds(60))
        #expect(driver.line(startingWith: "placed") == "placed phoenix=victim mortal=victim")
        victim.killTree()
        #expect(try await driver.waitForExit(timeout: .seconds(90)) == 0)
        // Rebuilt through its initialiser: the count starts again.
        #expect(driver.line(startingWith: "phoenix restarted") == "phoenix restarted on head count=1")
        #expect(driver.line(startingWith: "mortal:") == "mortal: ActorDiedError true")
        // maxTaskRetries: the call in flight when its node died ran again on the rebuilt actor.
        #expect(driver.line(startingWith: "patient") == "patient retried call returned 1")
    }

    @Test func tenThousandActorsShareOneExecutorProcess() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(["many", "10000"])
        #expect(try await driver.waitForExit(timeout: .seconds(240)) == 0)
        let line = try #require(driver.line(startingWith: "many"))
        #expect(line.contains("actors=10000 answered=10000 processes=1 "))
        let fields = Dictionary(
            uniqueKeysWithValues: line.split(separator: " ").dropFirst().compactMap { field -> (String, Int)? in
                let parts = field.split(separator: "=")
                guard parts.count == 2, let value = Int(parts[1]) else { return nil }
                return (String(parts[0]), value)
            })
        let perActor = try #require(fields["bytesPerActor"])
        #expect(perActor < 20_000, "idle memory per actor was \(perActor) bytes")
        print("actor memory: \(perActor) bytes each; \(fields["createdPerSecond"] ?? 0) created per second (debug build)")
    }
}
