import Foundation
import Shoal
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The session folder and what the daemons write are this user's alone (security issue, local
/// files): another user reads no log, no job output and no object; a session folder someone
/// else made first is refused; a store password never goes on a command line.
@Suite(.serialized) struct LocalFilesTests {
    /// `nobody`, for the checks that need a second user.
    static let nobody: UInt32 = 65534

    static func runAsNobody(_ command: String) async throws -> (status: Int32, output: String) {
        let process = try RunningProcess(
            "/usr/bin/setpriv",
            ["--reuid", "\(nobody)", "--regid", "\(nobody)", "--clear-groups", "--", "/bin/sh", "-c", command])
        let status = try await process.waitForExit(timeout: .seconds(30))
        return (status, process.output.joined(separator: "\n"))
    }

    /// Every file and folder under `root`, itself included.
    static func tree(_ root: String) -> [String] {
        [root] + (FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String }.map { root + "/" + $0 } ?? [])
    }

    @Test(.enabled(if: geteuid() == 0, "switching to a second user needs root"))
    func anotherUserReadsNothingOfACluster() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        let driver = try cluster.driver(["sum", "5"])
        #expect(try await driver.waitForExit(timeout: .seconds(60)) == 0, "\(driver.output)")
        var info = stat()
        #expect(
            stat(cluster.session, &info) == 0 && info.st_mode & 0o777 == 0o700,
            "session mode \(String(info.st_mode & 0o777, radix: 8))")
        let files = Self.tree(cluster.session).filter { path in
            var entry = stat()
            return lstat(path, &entry) == 0 && entry.st_mode & S_IFMT == S_IFREG
        }
        #expect(files.contains { $0.hasSuffix("head.sqlite") }, "the cluster wrote its store: \(files.prefix(20))")
        // Each file, even knowing its path: through the 0700 folder nothing opens.
        for file in files.prefix(40) {
            let (status, output) = try await Self.runAsNobody("cat '\(file)' > /dev/null")
            #expect(status != 0, "nobody read \(file): \(output)")
        }
        let (listed, listing) = try await Self.runAsNobody("ls '\(cluster.session)'")
        #expect(listed != 0 && listing.contains("Permission denied"), "\(listing)")
        // The object stores' shared-memory folders.
        let stores = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("shoal-") }
        for store in stores {
            var entry = stat()
            guard lstat("/dev/shm/" + store, &entry) == 0, entry.st_uid == geteuid() else { continue }
            #expect(entry.st_mode & 0o077 == 0, "/dev/shm/\(store) is open to others: \(String(entry.st_mode & 0o777, radix: 8))")
        }
    }

    @Test(.enabled(if: geteuid() == 0, "making a folder of another user's needs root"))
    func aSessionFolderOfAnotherUsersIsRefused() async throws {
        let folder = NSTemporaryDirectory() + "shoal-foreign-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(chown(folder, Self.nobody, Self.nobody) == 0)
        // A head address planted there is not followed by drivers.
        try "tcp://127.0.0.1:1\n\(getpid())\n".write(toFile: folder + "/head_address", atomically: true, encoding: .utf8)
        #expect(Session(directory: folder).headAddress() == nil)
        let start = try RunningProcess(
            binaryPath("cluster"), ["start", "--head", "--port", "0", "--block"], environment: ["SHOAL_SESSION_DIR": folder])
        defer { start.killTree() }
        #expect(try await start.waitForExit(timeout: .seconds(30)) != 0)
        #expect(start.output.contains { $0.contains("belongs to uid \(Self.nobody)") }, "\(start.output)")
        // A link in the folder's place is refused too.
        let link = folder + "-link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: folder)
        defer { try? FileManager.default.removeItem(atPath: link) }
        #expect(throws: SessionError.self) { try Session(directory: link).prepare() }
    }

    /// A folder of this user's that others could enter is closed (0700) when a session starts in it.
    @Test func anOwnSessionFolderIsMadePrivate() throws {
        let folder = NSTemporaryDirectory() + "shoal-open-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(chmod(folder, 0o755) == 0)
        try Session(directory: folder).prepare()
        for path in [folder, folder + "/logs", folder + "/processes"] {
            var info = stat()
            #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o700, "\(path)")
        }
        #expect(Session.defaultDirectory.hasSuffix("/shoal") || Session.defaultDirectory == "/tmp/shoal-\(geteuid())")
    }

    @Test func aStorePasswordOnTheCommandLineIsRefused() async throws {
        let folder = NSTemporaryDirectory() + "shoal-password-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let start = try RunningProcess(
            binaryPath("cluster"),
            ["start", "--head", "--port", "0", "--block", "--storage", "postgres://shoal:hunter2@127.0.0.1:1/shoal"],
            environment: ["SHOAL_SESSION_DIR": folder])
        defer { start.killTree() }
        #expect(try await start.waitForExit(timeout: .seconds(30)) != 0)
        #expect(start.output.contains { $0.contains("PGPASSWORD or ~/.pgpass") }, "\(start.output)")
    }
}
