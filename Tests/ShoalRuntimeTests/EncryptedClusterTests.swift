import Foundation
import Shoal
import ShoalTestSupport
import ShoalTransport
import Testing

/// A cluster started with a secret (`cluster start --head --secure`, or the secret file in every
/// process's environment): its own drivers work; a client without the secret, or with another,
/// reaches nothing — a `cluster submit -- /bin/touch X` never runs and garbage is never read.
@Suite(.serialized) struct EncryptedClusterTests {
    @Test func onlyTheClustersClientsAreAdmitted() async throws {
        let folder = NSTemporaryDirectory() + "shoal-curve-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let secret = folder + "/cluster.secret"
        try ClusterKeys.create(path: secret)
        let other = folder + "/other.secret"
        try ClusterKeys.create(path: other)
        #expect(try ClusterKeys.load(path: secret) != ClusterKeys.load(path: other))

        let cluster = try await ClusterProcesses(cpus: 2, environment: [ClusterSecurity.variable: secret])
        defer { cluster.stop() }
        // The cluster's own driver: tasks, executors and objects all over CURVE.
        let driver = try cluster.driver(["mapreduce", "100"])
        #expect(try await driver.waitForExit(timeout: .seconds(120)) == 0, "\(driver.output)")
        #expect(driver.line(startingWith: "sum=")?.hasPrefix("sum=\((0..<100).reduce(0) { $0 + $1 * $1 })") == true)

        // Without the secret: the job submission never reaches the head.
        let marker = folder + "/touched"
        let intruder = try RunningProcess(
            binaryPath("cluster"), ["submit", "--address", cluster.address, "--no-wait", "--", "/bin/touch", marker],
            environment: ["SHOAL_SESSION_DIR": folder + "/intruder"])
        #expect(try await intruder.waitForExit(timeout: .seconds(60)) != 0, "\(intruder.output)")
        // A raw plain socket's garbage is never read (the handshake fails first).
        let socket = try Socket(.dealer)
        try socket.connect(cluster.address)
        for _ in 0..<5 { try socket.send([Array("garbage".utf8)], blocking: false) }
        // With another cluster's secret: refused too.
        let stranger = try RunningProcess(
            binaryPath("cluster"), ["submit", "--address", cluster.address, "--no-wait", "--", "/bin/touch", marker],
            environment: ["SHOAL_SESSION_DIR": folder + "/stranger", ClusterSecurity.variable: other])
        #expect(try await stranger.waitForExit(timeout: .seconds(60)) != 0, "\(stranger.output)")
        try await Task.sleep(for: .seconds(1))
        socket.close()
        #expect(!FileManager.default.fileExists(atPath: marker), "a client without the secret ran a command")

        // The cluster is still up and serves its own clients; it read none of the garbage.
        let status = try RunningProcess(
            binaryPath("cluster"), ["status", "--address", cluster.address], environment: cluster.environment)
        #expect(try await status.waitForExit(timeout: .seconds(60)) == 0, "\(status.output)")
        let again = try cluster.driver(["mapreduce", "10"])
        #expect(try await again.waitForExit(timeout: .seconds(120)) == 0, "\(again.output)")
    }

    @Test func aSecretReadableByOthersIsRefused() throws {
        let path = NSTemporaryDirectory() + "shoal-secret-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ClusterKeys.create(path: path)
        #expect(chmod(path, 0o644) == 0)
        #expect(throws: ZMQError.self) { try ClusterKeys.load(path: path) }
        #expect(chmod(path, 0o600) == 0)
        try "not hex".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: ZMQError.self) { try ClusterKeys.load(path: path) }
    }
}
