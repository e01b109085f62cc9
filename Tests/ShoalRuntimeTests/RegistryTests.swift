import Foundation
import ShoalStorage
import ShoalTestSupport
import ShoalWire
import Synchronization
import Testing

@testable import ShoalRuntime

/// The model registry over real sockets, the same suite on SQLite and on PostgreSQL.
@Suite struct RegistryTests {
    /// A registry server on loopback with a fresh store, and a way to reach it as anyone.
    final class Fixture {
        let store: TestStore
        let artifacts: String
        let server: RegistryServer

        init(_ backend: StorageBackend, maxArtifact: UInt64 = ArtifactStore.defaultMaxSize) throws {
            store = try TestStore.make(backend)
            artifacts = NSTemporaryDirectory() + "shoal-artifacts-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let service = try RegistryService(
                storage: store.location, artifacts: try ArtifactStore(root: artifacts, maxSize: maxArtifact),
                stagedLimit: 3 * maxArtifact)
            server = try RegistryServer(service: service, bind: "tcp://127.0.0.1:0", advertisedHost: "127.0.0.1")
        }

        func client(_ identity: String, sharedStore: Bool = true, localLink: Bool = true) throws -> ModelRegistry {
            let client = try ModelRegistry(
                address: server.address, identity: identity, sharedStore: sharedStore, localLink: localLink)
            #expect(client.usesLocalLink == (localLink && LocalLinkSetting.enabled))
            return client
        }

        func remove() {
            server.shutdown()
            store.remove()
            try? FileManager.default.removeItem(atPath: artifacts)
        }
    }

    /// A small, valid safetensors file: one float32 tensor.
    static func safetensors(_ values: [Float]) -> [UInt8] {
        let header = #"{"w":{"dtype":"F32","shape":[\#(values.count)],"data_offsets":[0,\#(values.count * 4)]}}"#
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8)
        values.withUnsafeBytes { bytes += $0 }
        return bytes
    }

    func expectError(_ contains: String, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected an error containing '\(contains)'")
        } catch {
            #expect("\(error)".contains(contains), "\(error)")
        }
    }

    @Test(arguments: [StorageBackend.sqlite, .postgres])
    func versionsAliasesApprovalsSearchAndAudit(_ backend: StorageBackend) throws {
        let fixture = try Fixture(backend)
        defer { fixture.remove() }
        let alice = try fixture.client("alice")
        let bob = try fixture.client("bob")
        try alice.createModel("hybrid", description: "CNN+LSTM", tags: ["team": "quant"])
        let v1 = try alice.register(
            model: "hybrid", artifact: Self.safetensors([1, 2, 3]), parameters: ["lr": "0.001"], metrics: ["accuracy": 0.61],
            history: [("loss", 1, 0.9), ("loss", 2, 0.7)], tags: ["stage": "dev"],
            lineage: .init(jobID: "job-1", taskID: "7", dataSHA256: String(repeating: "a", count: 64)),
            configJSON: #"{"hidden": 64, "layers": [1.5, "lstm", null, true, {"k": -3}]}"#)
        let v2 = try alice.register(
            model: "hybrid", artifact: Self.safetensors([4, 5]), parameters: ["lr": "0.0005"], metrics: ["accuracy": 0.67],
            tags: ["stage": "candidate"], lineage: .init(parentVersion: 1))
        let v3 = try bob.register(model: "hybrid", artifact: Self.safetensors([6]), metrics: ["accuracy": 0.58])
        #expect([v1.version, v2.version, v3.version] == [Int](1...3))
        #expect(v1.metrics["loss"]?.map(\.value) == [Double]([0.9, 0.7]))
        #expect(v1.lineage.jobID == "job-1" && v2.lineage.parentVersion == 1)
        #expect(v1.modelCard.contains("\"hidden\" : 64"), "\(v1.modelCard)")
        let card = try JSONSerialization.jsonObject(with: Data(v1.modelCard.utf8)) as? [String: Any]
        let config = card?["config"] as? [String: Any]
        #expect((config?["layers"] as? [Any])?.count == 5 && (config?["layers"] as? [Any])?.first as? Double == 1.5)
        #expect((card?["metrics"] as? [String: Double]) == ["accuracy": 0.61, "loss": 0.7])
        #expect((card?["lineage"] as? [String: Any])?["job_id"] as? String == "job-1")
        #expect((card?["artifact"] as? [String: Any])?["sha256"] as? String == v1.artifactSHA256)
        #expect(card?["version"] as? Int == 1 && card?["registered_by"] as? String == "alice")

        // production moves only to a version someone else approved.
        expectError("needs an approval") { try alice.moveAlias("hybrid", "production", to: 2) }
        expectError("cannot approve it") { try alice.approve("hybrid", version: 2, for: "production") }
        try bob.approve("hybrid", version: 2, for: "production", reason: "backtest Sharpe 1.4")
        try alice.moveAlias("hybrid", "production", to: 2, reason: "release")
        try bob.moveAlias("hybrid", "staging", to: 3)
        let loaded = try bob.load(name: "hybrid", alias: "production")
        #expect(loaded.version.version == 2)
        #expect(loaded.artifact == Self.safetensors([4, 5]))
        #expect(try alice.model("hybrid").aliases == ["production": 2, "staging": 3])

        // Search by tag, metric threshold and alias; compare.
        #expect(try alice.search(VersionFilter(model: "hybrid", tag: ("stage", "candidate"))).map(\.version) == [2])
        #expect(try alice.search(VersionFilter(metric: "accuracy", minimum: 0.6)).map(\.version) == [2, 1])
        #expect(try alice.search(VersionFilter(metric: "loss", maximum: 0.8)).map(\.version) == [1])
        #expect(try alice.search(VersionFilter(alias: "staging")).map(\.version) == [3])
        #expect(try alice.models(tag: "team", value: "quant").map(\.name) == ["hybrid"])
        let comparison = try alice.compare("hybrid", 1, 2)
        #expect(comparison.metrics.first { $0.name == "accuracy" }.map { [$0.left, $0.right] } == [0.61, 0.67])
        #expect(comparison.parameters.first { $0.name == "lr" }.map { [$0.left, $0.right] } == ["0.001", "0.0005"])

        // Archiving: not while aliased.
        expectError("still aliased as staging") { try bob.archive("hybrid", version: 3) }
        try bob.moveAlias("hybrid", "staging", to: nil)
        #expect(try bob.archive("hybrid", version: 3, reason: "worse").status == "ARCHIVED")
        #expect(try alice.search(VersionFilter(model: "hybrid")).map(\.version) == [2, 1])
        try alice.setTags("hybrid", version: 1, ["stage": "retired"], reason: "superseded")

        let audit = try alice.audit(model: "hybrid")
        #expect(
            audit.map(\.action) == [
                "create-model", "register", "register", "register", "approve", "alias", "alias", "alias", "archive", "tag",
            ])
        #expect(audit[4].actor == "bob" && audit[4].reason == "backtest Sharpe 1.4")
        #expect(audit[5].details == "production: nothing → version 2" && audit[5].actor == "alice")
        #expect(audit.map(\.id) == audit.map(\.id).sorted())

        // The log is append-only, even to someone with the database.
        let database = try fixture.store.location.open()
        #expect(throws: StorageError.self) { try database.run("UPDATE audit_log SET actor = 'mallory'") }
        #expect(throws: StorageError.self) { try database.run("DELETE FROM audit_log") }
    }

    /// The same checks whether the client writes the shared artifact store itself or sends
    /// artifacts through the registry's socket.
    @Test(arguments: [StorageBackend.sqlite, .postgres], [true, false])
    func badRequestsGetClearErrors(_ backend: StorageBackend, sharedStore: Bool) throws {
        let fixture = try Fixture(backend, maxArtifact: 1 << 20)
        defer { fixture.remove() }
        // Through the socket over ZeroMQ, to cover that path with every refusal too.
        let alice = try fixture.client("alice", sharedStore: sharedStore, localLink: sharedStore)
        #expect(alice.usesSharedStore == sharedStore)
        // A folder at the store's path that is not the store (another host's) is never used.
        try "another store\n".write(toFile: fixture.artifacts + "/.shoal-store", atomically: true, encoding: .utf8)
        #expect(try !fixture.client("carol").usesSharedStore)
        try fixture.server.service.artifacts.identifier.write(
            toFile: fixture.artifacts + "/.shoal-store", atomically: true, encoding: .utf8)
        let v1 = try alice.register(model: "m", artifact: Self.safetensors([1]))
        expectError("no model 'ghost'") { _ = try alice.version("ghost") }
        expectError("has no version 9") { _ = try alice.version("m", number: 9) }
        expectError("has no alias 'champion'") { _ = try alice.load(name: "m", alias: "champion") }
        expectError("is not a valid model name") { _ = try alice.register(model: "../etc", artifact: [1]) }
        for bad in ["modèle", "-m", ".m", String(repeating: "m", count: 129), ""] {
            expectError("is not a valid model name") { _ = try alice.createModel(bad) }
        }
        #expect(try alice.createModel("Model_1.v-2").name == "Model_1.v-2")
        expectError("is not a valid alias") { try alice.moveAlias("m", "prod uction", to: 1) }
        expectError("is not a valid tag key") { try alice.setTags("m", ["bad key": "x"]) }
        expectError("over the registry's limit of 1.0 MiB") {
            _ = try alice.register(model: "m", artifact: [UInt8](repeating: 0, count: 2 << 20), format: "binary")
        }
        expectError("not a safetensors file") { _ = try alice.register(model: "m", artifact: [1, 2, 3, 4, 5, 6, 7, 8, 9]) }
        expectError("parent version 5") {
            _ = try alice.register(model: "m", artifact: Self.safetensors([2]), lineage: .init(parentVersion: 5))
        }
        expectError("not a finite number") {
            _ = try alice.register(model: "m", artifact: Self.safetensors([2]), metrics: ["x": .nan])
        }
        expectError("needs an identity") { _ = try fixture.client(" ").models() }
        expectError("the model configuration is not JSON") {
            _ = try alice.register(model: "m", artifact: Self.safetensors([2]), configJSON: "{hidden: 64")
        }
        // Refused registrations took no number: the next one is 2.
        #expect(try alice.register(model: "m", artifact: Self.safetensors([3])).version == 2)

        // One flipped byte in the stored artifact is caught on download.
        let path = "\(fixture.artifacts)/\(v1.artifactSHA256.prefix(2))/\(v1.artifactSHA256)"
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[bytes.count - 1] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        expectError("m version 1: artifact \(v1.artifactSHA256) in \(fixture.artifacts) is corrupted") {
            _ = try alice.load(name: "m", version: 1)
        }
        #expect(try alice.load(name: "m", version: 2).artifact == Self.safetensors([3]))
    }
}

extension RegistryTests {
    /// A version registered from a file, read a piece at a time: into the shared store, or
    /// through the registry's socket; small, empty, safetensors and refused files.
    @Test(arguments: [true, false])
    func versionsRegisterFromFiles(sharedStore: Bool) throws {
        let fixture = try Fixture(.sqlite, maxArtifact: 4 << 20)
        defer { fixture.remove() }
        let alice = try fixture.client("alice", sharedStore: sharedStore)
        #expect(alice.usesSharedStore == sharedStore)
        let folder = fixture.artifacts + "-files"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func file(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = folder + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        let artifact = (0..<(3 * ArtifactPieces.size + 77)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
        let v1 = try alice.register(model: "file", artifactAt: try file("weights.bin", artifact), format: "binary", metrics: ["loss": 0.5])
        #expect(v1.artifactSHA256 == SHA256.hexDigest(of: artifact) && v1.artifactSize == UInt64(artifact.count))
        #expect(v1.metrics["loss"]?.first?.value == 0.5)
        #expect(try alice.load(name: "file", version: 1).artifact == artifact)
        #expect(try alice.register(model: "file", artifactAt: try file("small.bin", [1, 2, 3]), format: "binary").artifactSize == 3)
        #expect(try alice.load(name: "file", version: 2).artifact == [1, 2, 3])
        #expect(try alice.register(model: "file", artifactAt: try file("empty.bin", []), format: "binary").artifactSize == 0)
        let tensors = Self.safetensors((0..<ArtifactPieces.size).map { Float($0) })
        #expect(try alice.register(model: "file", artifactAt: try file("model.safetensors", tensors)).version == 4)
        #expect(try alice.load(name: "file", version: 4).artifact == tensors)
        expectError("not a safetensors file: 1 bytes after the last tensor") {
            _ = try alice.register(model: "file", artifactAt: try file("broken.safetensors", tensors + [0]))
        }
        expectError("cannot read the artifact file \(folder)/missing") {
            _ = try alice.register(model: "file", artifactAt: folder + "/missing", format: "binary")
        }
        expectError("is not a regular file") { _ = try alice.register(model: "file", artifactAt: folder, format: "binary") }
        let large = try file("large.bin", [])
        #expect(truncate(large, 5 << 20) == 0)
        expectError("over the registry's") { _ = try alice.register(model: "file", artifactAt: large, format: "binary") }
        #expect(try alice.model("file").latestVersion == 4)
        // Into the shared store nothing crossed the socket; else the multi-piece files did.
        let uploads = fixture.server.service.uploads.begun.load(ordering: .relaxed)
        #expect(sharedStore ? uploads == 0 : uploads >= 2, "\(uploads) uploads")
        let staged = (try? FileManager.default.contentsOfDirectory(atPath: fixture.artifacts + "/.incoming")) ?? []
        #expect(staged.isEmpty, "staging files left: \(staged)")
    }

    /// Artifacts over a piece's size cross the socket in pieces both ways; the registry checks
    /// each upload's order, size and limit, and leaves no staging file behind.
    /// Over a local link (a client on the registry's host) and over ZeroMQ.
    @Test(arguments: [StorageBackend.sqlite, .postgres], [true, false])
    func largeArtifactsCrossTheSocketInPieces(_ backend: StorageBackend, localLink: Bool) throws {
        let fixture = try Fixture(backend, maxArtifact: 4 << 20)
        defer { fixture.remove() }
        let alice = try fixture.client("alice", sharedStore: false, localLink: localLink)
        let artifact = (0..<(4 * ArtifactPieces.size + 123)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let v1 = try alice.register(model: "big", artifact: artifact, format: "binary")
        #expect(v1.artifactSHA256 == SHA256.hexDigest(of: artifact) && v1.artifactSize == UInt64(artifact.count))
        let loaded = try alice.load(name: "big", version: 1)
        #expect(loaded.artifact.count == artifact.count && loaded.artifact == artifact)

        // Downloaded into a folder a piece at a time, through the socket and from the store.
        let folder = fixture.artifacts + "-downloads-\(localLink)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (fetched, file) = try alice.download(name: "big", version: 1, into: folder)
        #expect(fetched.version == 1 && file == folder + "/big-v1.bin")
        #expect(FileManager.default.contents(atPath: file) == Data(artifact))
        let local = try fixture.client("bob", sharedStore: true, localLink: localLink)
        try FileManager.default.removeItem(atPath: file)
        #expect(try local.download(name: "big", alias: nil, into: folder).path == file)
        #expect(FileManager.default.contents(atPath: file) == Data(artifact))
        try FileManager.default.removeItem(atPath: file)

        // A flipped byte in the middle is caught after the pieces were sent; registering the
        // same bytes again repairs the stored copy.
        let path = "\(fixture.artifacts)/\(v1.artifactSHA256.prefix(2))/\(v1.artifactSHA256)"
        var stored = try #require(FileManager.default.contents(atPath: path))
        stored[stored.count / 2] ^= 0x40
        try stored.write(to: URL(fileURLWithPath: path))
        expectError("big version 1: artifact \(v1.artifactSHA256) in \(fixture.artifacts) is corrupted") {
            _ = try alice.load(name: "big", version: 1)
        }
        for client in [alice, local] {
            expectError("big version 1: artifact \(v1.artifactSHA256) in \(fixture.artifacts) is corrupted") {
                _ = try client.download(name: "big", version: 1, into: folder)
            }
        }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: folder)) == [], "a refused download leaves nothing")
        #expect(try alice.register(model: "big", artifact: artifact, format: "binary").version == 2)
        #expect(try alice.load(name: "big", version: 1).artifact == artifact)

        // A safetensors file in pieces is checked from its header in the staging file; one
        // that is not never reaches the store.
        let tensors = Self.safetensors((0..<(ArtifactPieces.size / 2)).map { Float($0) })
        #expect(try alice.register(model: "big", artifact: tensors).artifactSize == UInt64(tensors.count))
        var broken = tensors
        broken.append(0)  // one byte after the last tensor
        expectError("not a safetensors file: 1 bytes after the last tensor") {
            _ = try alice.register(model: "big", artifact: broken)
        }
        let brokenPath = fixture.artifacts + "/" + SHA256.hexDigest(of: broken).prefix(2) + "/" + SHA256.hexDigest(of: broken)
        #expect(!FileManager.default.fileExists(atPath: brokenPath))

        // Uploads that do not add up, by hand.
        let channel = try RequestChannel(address: fixture.server.address, peer: "registry", preferLocal: localLink)
        #expect(channel.isLocal == (localLink && LocalLinkSetting.enabled))
        func piece(_ upload: UInt64, _ offset: UInt64, _ count: Int, of total: UInt64) throws {
            var chunk = Shoal_V1_ArtifactChunk()
            chunk.uploadID = upload
            chunk.offset = offset
            chunk.total = total
            try channel.send(.artifactChunk(chunk), payloads: [[UInt8](repeating: 7, count: count)])
        }
        func register(_ upload: UInt64, size: UInt64) throws {
            var register = Shoal_V1_RegisterVersion()
            register.model = "big"
            register.artifactFormat = "binary"
            register.uploadID = upload
            register.artifactSize = size
            var request = Shoal_V1_RegistryRequest()
            request.identity = "alice"
            request.op = .registerVersion(register)
            _ = try channel.request(.registryRequest(request), timeout: .seconds(10))
        }
        expectError("no artifact upload 42 from this client") { try register(42, size: 10) }
        try piece(1, 0, 100, of: 300)
        try piece(1, 200, 100, of: 300)
        expectError("upload piece at byte 200 (100 bytes of 300) does not follow the 100 bytes received") {
            try register(1, size: 300)
        }
        try piece(2, 0, 100, of: 300)
        expectError("the upload holds 100 of 300 bytes, not the 300") { try register(2, size: 300) }
        try piece(3, 0, 100, of: 8 << 20)
        expectError("over the registry's limit of 4.0 MiB") { try register(3, size: 8 << 20) }
        try piece(4, 0, 300, of: 300)
        #expect(throws: Never.self) { try register(4, size: 300) }
        #expect(try alice.load(name: "big", version: 4).artifact == [UInt8](repeating: 7, count: 300))
        // A registration refused for another reason drops its upload too.
        try piece(5, 0, 300, of: 300)
        expectError("the upload holds 300 of 300 bytes, not the 301") { try register(5, size: 301) }
        expectError("no artifact upload 5 from this client") { try register(5, size: 300) }
        // One client holds at most eight uploads open.
        for id in UInt64(10)..<18 { try piece(id, 0, 10, of: 10) }
        try piece(18, 0, 10, of: 10)
        expectError("this client has 8 uploads open already") { try register(18, size: 10) }
        for id in UInt64(10)..<18 { expectError("not the 11 the registration names") { try register(id, size: 11) } }
        // The open uploads together declare at most the staged limit (three of the largest here).
        for id in UInt64(20)..<23 { try piece(id, 0, 10, of: 4 << 20) }
        try piece(23, 0, 10, of: 4 << 20)
        expectError("with this one's 4.0 MiB that is over its limit of 12.0 MiB") { try register(23, size: 4 << 20) }
        for id in UInt64(20)..<23 { expectError("the upload holds 10 of 4194304 bytes") { try register(id, size: 4 << 20) } }

        // A download asked for in one frame (chunk size 0, as clients before pieces asked).
        var download = Shoal_V1_DownloadArtifact()
        download.model = "big"
        download.version = 1
        var asking = Shoal_V1_RegistryRequest()
        asking.identity = "alice"
        asking.op = .downloadArtifact(download)
        let whole = try channel.request(.registryRequest(asking), timeout: .seconds(10))
        #expect(try whole.payload(1) == artifact)
        #expect(fixture.server.service.uploads.count == 0)
        let staged = (try? FileManager.default.contentsOfDirectory(atPath: fixture.artifacts + "/.incoming")) ?? []
        #expect(staged.isEmpty, "staging files left: \(staged)")

        // A registry starting on the store removes staging files an hour old (left by a crash).
        let stale = fixture.artifacts + "/.incoming/stale"
        let fresh = fixture.artifacts + "/.incoming/fresh"
        for path in [stale, fresh] { #expect(FileManager.default.createFile(atPath: path, contents: Data([1]))) }
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -7200)], ofItemAtPath: stale)
        _ = try RegistryService(storage: fixture.store.location, artifacts: try ArtifactStore(root: fixture.artifacts))
        #expect(!FileManager.default.fileExists(atPath: stale) && FileManager.default.fileExists(atPath: fresh))
    }
}
