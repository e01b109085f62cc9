import Foundation
import Shoal
@testable import ShoalRuntime
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

    /// An output kept on a node that is then killed: asking for it fails within a few node
    /// timeouts, naming the node, instead of waiting for pieces that will never come.
    @Test func anObjectOnAKilledNodeFailsItsGetInsteadOfWaiting() async throws {
        let cluster = try await ClusterProcesses(cpus: 2, nodeTimeoutMilliseconds: 2000)
        defer { cluster.stop() }
        let second = try await cluster.addNode("second", cpus: 2)
        let (driver, resume) = try await cluster.pausedDriver(["lostobject", "4"], pausingAfter: "made on second")
        second.killTree()
        resume()
        #expect(try await driver.waitForExit(timeout: .seconds(90)) == 0)
        let line = try #require(driver.line(startingWith: "lost object"), "\(driver.output.suffix(10))")
        #expect(line.contains("failed after"), "\(line)")
        #expect(line.contains("second") || line.contains("sent nothing"), "the error names the node: \(line)")
        let seconds = line.split(separator: " ").dropFirst(4).first.flatMap { Int($0) }
        #expect(seconds.map { $0 < 30 } == true, "failed within a few node timeouts: \(line)")
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

/// Mappings kept across objects that reuse one store file.
@Suite struct StoreMappingsTests {
    /// A new folder holding `file`, a zeroed file of the smallest kept size, and mappings to use on it.
    private static func fixture(named name: String, file: String) throws -> (String, String, Int, StoreMappings) {
        let directory = NSTemporaryDirectory() + "shoal-\(name)-mappings-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let count = StoreMappings.minimumKeptSize
        let path = directory + "/" + file
        #expect(FileManager.default.createFile(atPath: path, contents: Data(count: count)))
        return (directory, path, count, StoreMappings())
    }

    @Test func aReusedFileIsWrittenThroughItsKeptMappingAndADeletedOneIsLetGo() throws {
        let (directory, first, count, mappings) = try Self.fixture(named: "write", file: "first")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try mappings.write(path: first, count: count) { $0.initializeMemory(as: UInt8.self, repeating: 1) }
        // The store hands the same file to the next object under another name.
        let second = directory + "/second"
        #expect(rename(first, second) == 0)
        try mappings.write(path: second, count: count) { bytes in
            #expect(bytes.allSatisfy { $0 == 1 })
            bytes.initializeMemory(as: UInt8.self, repeating: 2)
        }
        let written = try #require(FileManager.default.contents(atPath: second))
        #expect(written.count == count && written.allSatisfy { $0 == 2 })
        // Deleted by the store: the kept mapping goes at the next release, and a new file of the
        // same size is mapped afresh.
        #expect(unlink(second) == 0)
        mappings.release()
        let third = directory + "/third"
        #expect(FileManager.default.createFile(atPath: third, contents: Data(count: count)))
        try mappings.write(path: third, count: count) { bytes in #expect(bytes.allSatisfy { $0 == 0 }) }
        #expect(throws: ClusterError.self) { try mappings.write(path: directory + "/missing", count: count) { _ in } }
    }

    @Test func aReadSeesTheLatestWriteAndOutlivesTheFilesDeletion() throws {
        let (directory, path, count, mappings) = try Self.fixture(named: "read", file: "object")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try mappings.write(path: path, count: count) { $0.initializeMemory(as: UInt8.self, repeating: 3) }
        let first = try mappings.read(path: path, count: count)
        #expect(first.count == count && first.bytes.allSatisfy { $0 == 3 })
        // The same file written again (a recycled file): a new read sees the new bytes.
        try mappings.write(path: path, count: count) { $0.initializeMemory(as: UInt8.self, repeating: 4) }
        let second = try mappings.read(path: path, count: count)
        #expect(second.bytes.allSatisfy { $0 == 4 })
        // Deleted by the store and let go here: a view still held keeps its bytes readable.
        #expect(unlink(path) == 0)
        mappings.release()
        #expect(second.bytes.allSatisfy { $0 == 4 })
        // Small files are mapped read-only for the one read.
        let small = directory + "/small"
        #expect(FileManager.default.createFile(atPath: small, contents: Data([1, 2, 3])))
        let read = try mappings.read(path: small, count: 3)
        #expect(Array(read.bytes) == [1, 2, 3])
        #expect(throws: ClusterError.self) { try mappings.read(path: directory + "/missing", count: count) }
    }
}
