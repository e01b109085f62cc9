import Foundation
import Shoal
import ShoalStorage
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Many registering processes against a head, and a head killed in the middle of it.
@Suite(.serialized) struct RegistryProcessTests {
    @Test func aSubmittedJobRegistersItsModelWithItsJobAsLineage() async throws {
        let cluster = try await ClusterProcesses()
        defer { cluster.stop() }
        let process = try RunningProcess(
            binaryPath("cluster"),
            [
                "submit", "--address", cluster.address, "--job-id", "train-7", "--", binaryPath("shoal-testjob"), "register",
                "1000",
            ],
            environment: cluster.environment)
        #expect(try await process.waitForExit(timeout: .seconds(60)) == 0, "\(process.output)")
        #expect(process.line(startingWith: "registered ") == "registered version=1 job=train-7 intact=true", "\(process.output)")
        // A client on the head's host reaches its registry over a local link (unless turned off),
        // another over ZeroMQ: the same answers either way.
        let linked = try ModelRegistry(address: cluster.address, identity: "auditor")
        #expect(linked.usesLocalLink == (ProcessInfo.processInfo.environment["SHOAL_LOCAL_LINKS"] != "0"))
        let zeromq = try ModelRegistry(address: cluster.address, identity: "auditor", localLink: false)
        #expect(!zeromq.usesLocalLink)
        for registry in [linked, zeromq] {
            let audit = try registry.audit(model: "from-job")
            #expect(audit.map(\.action) == ["create-model", "register"])
            #expect(audit.allSatisfy { $0.actor == "trainer" })
        }
        #expect(try linked.load(name: "from-job", version: 1).artifact == (try zeromq.load(name: "from-job", version: 1)).artifact)
    }

    @Test(arguments: [StorageBackend.sqlite, .postgres])
    func eightProcessesGetGaplessVersionsAndAKilledHeadLeavesNoHalfRegisteredOne(_ backend: StorageBackend) async throws {
        let store = try TestStore.make(backend)
        defer { store.remove() }
        let storage: String =
            switch store.location {
            case .sqlite(let path): path
            case .postgres(let url): url
            }
        let session = NSTemporaryDirectory() + "shoal-registry-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: session) }
        let environment = ["SHOAL_SESSION_DIR": session, "SHOAL_LOG_LEVEL": "warning"]
        func startHead() async throws -> (RunningProcess, String) {
            let head = try RunningProcess(
                binaryPath("cluster"),
                [
                    "start", "--head", "--port", "0", "--num-cpus", "1", "--storage", storage, "--artifacts",
                    session + "/artifacts", "--block",
                ],
                environment: environment)
            let line = try await head.waitForLine(startingWith: "Shoal head started at", timeout: .seconds(30))
            return (head, String(line.split(separator: " ")[4]))
        }
        var (head, address) = try await startHead()
        defer { head.killTree() }
        let artifact = session + "/weights.bin"
        FileManager.default.createFile(
            atPath: artifact, contents: Data((0..<(512 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31) }))

        // Eight processes at once, three rounds.
        for round in 0..<3 {
            let writers = try (0..<8).map { index in
                try RunningProcess(
                    binaryPath("cluster"),
                    [
                        "models", "register", "m", "--artifact", artifact, "--format", "binary", "--metric",
                        "writer=\(round * 8 + index)",
                        "--address", address, "--identity", "writer-\(index)",
                    ], environment: environment)
            }
            for writer in writers { #expect(try await writer.waitForExit(timeout: .seconds(60)) == 0, "\(writer.output)") }
        }
        var registry = try ModelRegistry(address: address, identity: "checker")
        var versions = try registry.search(VersionFilter(model: "m", includeArchived: true, limit: 10_000)).map(\.version)
            .sorted()
        #expect(versions == Array(1...24))
        let writers = Set(try registry.search(VersionFilter(model: "m", limit: 10_000)).compactMap { $0.lastValue(of: "writer") })
        #expect(writers == Set((0..<24).map(Double.init)), "every write landed once")

        // Eight processes registering in a loop while the head is killed outright.
        let loops = try (0..<8).map { index in
            try RunningProcess(
                "/bin/bash",
                [
                    "-c",
                    "for n in $(seq 1 200); do \(binaryPath("cluster")) models register m --artifact \(artifact) --format binary "
                        + "--metric step=$n --address \(address) --identity loop-\(index) --timeout 2 >/dev/null 2>&1 || exit 0; done",
                ], environment: environment)
        }
        var before = 24
        let deadline = ContinuousClock.now + .seconds(60)
        while before < 40 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            before = (try? registry.model("m").latestVersion) ?? before
        }
        head.signal(SIGKILL)
        _ = try await head.waitForExit(timeout: .seconds(20))
        for loop in loops { _ = try await loop.waitForExit(timeout: .seconds(120)) }

        (head, address) = try await startHead()
        registry = try ModelRegistry(address: address, identity: "checker")
        let model = try registry.model("m")
        let all = try registry.search(VersionFilter(model: "m", includeArchived: true, limit: 10_000))
        versions = all.map(\.version).sorted()
        #expect(model.latestVersion >= before && model.latestVersion > 24, "\(model.latestVersion) after \(before)")
        #expect(versions == Array(1...model.latestVersion), "no gap and no duplicate after the kill")
        for version in all {
            #expect(version.metrics.count == 1, "version \(version.version) lost its metric")
            #expect(try registry.load(name: "m", version: version.version).artifact.count == 512 << 10)
        }
        let registrations = try registry.audit(model: "m", limit: 100_000).filter { $0.action == "register" }
        #expect(registrations.map(\.version).sorted() == versions, "one audit entry per version, none for a rolled-back one")

        // `cluster models download` writes the artifact and its card.
        let downloads = session + "/downloads"
        let download = try RunningProcess(
            binaryPath("cluster"),
            ["models", "download", "m", "3", "--output", downloads, "--address", address, "--identity", "checker"],
            environment: environment)
        #expect(try await download.waitForExit(timeout: .seconds(60)) == 0, "\(download.output)")
        #expect(FileManager.default.contents(atPath: downloads + "/m-v3.bin") == FileManager.default.contents(atPath: artifact))
        #expect(FileManager.default.fileExists(atPath: downloads + "/m-v3.card.json"))
        head.signal(SIGTERM)
        _ = try await head.waitForExit(timeout: .seconds(20))
    }
}
