import Foundation
import ShoalTestSupport
import Testing

/// A user's own package, outside the repository and depending on Shoal by path
/// (Tests/Fixtures/UserPackage, built by scripts/build-user-package.sh before the suite runs),
/// trains with two workers on a cluster and registers the result.
@Suite struct UserPackageTests {
    @Test func aPackageOutsideTheRepositoryTrainsWithTwoWorkersAndRegisters() async throws {
        let binary = try #require(
            ProcessInfo.processInfo.environment["SHOAL_USER_PACKAGE_BIN"],
            "SHOAL_USER_PACKAGE_BIN is not set: run the suite with make test, which builds the user package first")
        #expect(FileManager.default.isExecutableFile(atPath: binary), "\(binary) was not built")
        let folder = NSTemporaryDirectory() + "shoal-user-package-run-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let run = try RunningProcess(binary, [folder, "user-hybrid"], environment: cluster.environment.merging(["SHOAL_ADDRESS": cluster.address]) { $1 })
        #expect(try await run.waitForExit(timeout: .seconds(300)) == 0, "\(run.output)")
        #expect(run.output.contains { $0.hasPrefix("user-training registered user-hybrid version 1 after 20 steps") }, "\(run.output)")
        let show = try RunningProcess(
            binaryPath("cluster"), ["models", "show", "user-hybrid", "1", "--address", cluster.address], environment: cluster.environment)
        #expect(try await show.waitForExit(timeout: .seconds(60)) == 0, "\(show.output)")
        let card = show.output.joined(separator: "\n")
        #expect(card.contains("Aliases: staging"), "\(card)")
        // The lineage names the data and the binary by their SHA-256, and the job.
        for key in ["data_sha256", "code_sha256"] {
            #expect(card.range(of: "\"\(key)\" *: *\"[0-9a-f]{64}\"", options: .regularExpression) != nil, "\(key): \(card)")
        }
        #expect(card.contains("test_accuracy") && card.contains("batchSize"), "\(card)")
    }

    /// Every Swift block of the README compiles: scripts/build-user-package.sh made each one the
    /// main.swift of a target of the user package and built them; here each block of the README
    /// as it is now must have its target, with that very text, built.
    @Test func everySwiftBlockOfTheReadmeCompiles() throws {
        let environment = ProcessInfo.processInfo.environment
        let binary = try #require(environment["SHOAL_USER_PACKAGE_BIN"], "run the suite with make test")
        let package = try #require(environment["SHOAL_USER_PACKAGE_DIR"], "run the suite with make test")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let blocks = readme.components(separatedBy: "```swift\n").dropFirst().compactMap {
            $0.components(separatedBy: "```").first
        }
        #expect(blocks.count >= 6, "the README has \(blocks.count) Swift blocks")
        let bin = URL(fileURLWithPath: binary).deletingLastPathComponent().path
        for (index, block) in blocks.enumerated() {
            let source = try String(
                contentsOfFile: "\(package)/Sources/readme-snippet-\(index)/main.swift", encoding: .utf8)
            #expect(source == "// README.md, Swift block \(index)\n" + block, "block \(index) was not the one built")
            #expect(FileManager.default.isExecutableFile(atPath: "\(bin)/readme-snippet-\(index)"), "block \(index) did not build")
        }
    }
}

