import Foundation
import Shoal
import ShoalTestSupport
import Testing

/// Large objects through node object stores in shared memory, across separate processes.
@Suite(.serialized) struct ObjectStoreTests {
    @Test func a256MiBArrayArrivesBitForBitOnAnotherNodeAndIsMappedOnItsOwn() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        try await cluster.addNode("other", cpus: 2)
        let remote = try cluster.driver(["bigput", "256", "other"])
        #expect(try await remote.waitForExit(timeout: .seconds(240)) == 0)
        let remoteMapped = try #require(remote.line(startingWith: "bigput mapped"))
        #expect(remoteMapped.hasPrefix("bigput mapped node=other match=true"), "pulled from the head's node in chunks")
        #expect(remote.line(startingWith: "bigput copied")?.hasPrefix("bigput copied node=other match=true") == true)

        let local = try cluster.driver(["bigput", "256", "head"])
        #expect(try await local.waitForExit(timeout: .seconds(240)) == 0)
        let mapped = try #require(local.line(startingWith: "bigput mapped"))
        let copied = try #require(local.line(startingWith: "bigput copied"))
        print("same node: \(mapped) | \(copied); other node: \(remoteMapped)")
        #expect(mapped.hasPrefix("bigput mapped node=head match=true"))
        #expect(copied.hasPrefix("bigput copied node=head match=true"))
        // Mapped: no private copy of the 256 MiB. Copied: a private array of it.
        let mappedGrowth = Int(mapped.split(separator: "=").last ?? "") ?? .max
        let copiedGrowth = Int(copied.split(separator: "=").last ?? "") ?? 0
        #expect(mappedGrowth < 16, "mapping grew private memory by \(mappedGrowth) MiB")
        #expect(copiedGrowth >= 200, "copying grew private memory by only \(copiedGrowth) MiB")
    }

    @Test func aLargeTaskOutputStaysOnItsNodeAndIsReadFromThere() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        try await cluster.addNode("second", cpus: 2)
        let driver = try cluster.driver(["bigresult", "16", "second"])
        #expect(try await driver.waitForExit(timeout: .seconds(120)) == 0)
        #expect(driver.line(startingWith: "bigresult driver") == "bigresult driver match=true")
        #expect(driver.line(startingWith: "bigresult task") == "bigresult task node=head match=true")
    }

    @Test func aHundred64MiBObjectsThroughA1GiBStoreSpillAndComeBack() async throws {
        let cluster = try await ClusterProcesses(cpus: 2, headArguments: ["--object-store-memory", String(1 << 30)])
        defer { cluster.stop() }
        let driver = try cluster.driver(["spill", "100"])
        #expect(try await driver.waitForExit(timeout: .seconds(600)) == 0)
        #expect(driver.line(startingWith: "dropping") == "dropping spills=0 ", "freed objects leave room: no spilling")
        #expect(driver.line(startingWith: "holding") == "holding verified=100 spilledSome=true underLimit=true")
    }
}
