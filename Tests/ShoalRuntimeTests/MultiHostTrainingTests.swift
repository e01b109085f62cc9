import Foundation
import Shoal
import ShoalTensor
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Two hosts on one machine: the head (and its node) in this network namespace, a second node
/// daemon in a namespace of its own joined by a veth pair, as `ip netns` makes them (root only).
@Suite(.serialized, .enabled(if: getuid() == 0, "network namespaces need root")) struct MultiHostTrainingTests {
    /// Runs `ip ARGUMENTS…` and fails with its output when it does.
    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ClusterError.invalidArgument("ip \(arguments.joined(separator: " ")): \(output)")
        }
        return output
    }

    /// The bytes a link has received (`ip -s link`).
    static func receivedBytes(_ link: String) throws -> Int {
        let text = try ip(["-s", "link", "show", "dev", link])
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let header = lines.firstIndex(where: { $0.hasPrefix("RX:") }), header + 1 < lines.count,
            let bytes = Int(lines[header + 1].split(separator: " ").first ?? "")
        else { throw ClusterError.invalidArgument("no RX counters for \(link) in:\n\(text)") }
        return bytes
    }

    @Test func twoWorkersOnTwoHostsTrainOverTheRingAcrossTheLink() async throws {
        let tag = String(getpid() % 100_000)
        let namespace = "shoal-b\(tag)"
        let (linkA, linkB) = ("sha\(tag)", "shb\(tag)")
        let subnet = "10.231.\(getpid() % 250)"
        let (hostA, hostB) = ("\(subnet).1", "\(subnet).2")
        try Self.ip(["netns", "add", namespace])
        defer {
            try? Self.ip(["link", "del", linkA])
            try? Self.ip(["netns", "del", namespace])
        }
        try Self.ip(["link", "add", linkA, "type", "veth", "peer", "name", linkB])
        try Self.ip(["link", "set", linkB, "netns", namespace])
        try Self.ip(["addr", "add", "\(hostA)/24", "dev", linkA])
        try Self.ip(["link", "set", linkA, "up"])
        try Self.ip(["netns", "exec", namespace, "ip", "addr", "add", "\(hostB)/24", "dev", linkB])
        try Self.ip(["netns", "exec", namespace, "ip", "link", "set", linkB, "up"])
        try Self.ip(["netns", "exec", namespace, "ip", "link", "set", "lo", "up"])

        let folder = NSTemporaryDirectory() + "shoal-multihost-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = try DistributedTrainingTests.writeConfig(folder, maxSteps: 60, batch: 8)
        let single = try RunningProcess(binaryPath("trading"), ["model", "train", "--config", config, "--out", folder + "/one"])
        #expect(try await single.waitForExit(timeout: .seconds(300)) == 0, "\(single.output)")

        // Each host has a session folder of its own, as two machines would.
        func environment(_ host: String) -> [String: String] {
            ["SHOAL_SESSION_DIR": "\(folder)/session-\(host)", "SHOAL_HEARTBEAT_MS": "200", "SHOAL_NODE_TIMEOUT_MS": "6000",
             "SHOAL_LOG_LEVEL": "warning"]
        }
        let head = try RunningProcess(
            binaryPath("cluster"),
            ["start", "--head", "--port", "0", "--num-cpus", "1", "--node-id", "a", "--node-ip-address", hostA, "--block"],
            environment: environment("a"))
        defer { head.killTree() }
        let line = try await head.waitForLine(startingWith: "Shoal head started at", timeout: .seconds(30))
        let address = String(line.split(separator: " ")[4])
        let node = try RunningProcess(
            "/usr/bin/env",
            ["ip", "netns", "exec", namespace, binaryPath("cluster"), "start", "--address",
             address.replacingOccurrences(of: "tcp://", with: ""), "--num-cpus", "1", "--node-id", "b",
             "--node-ip-address", hostB, "--block"],
            environment: environment("b"))
        defer { node.killTree() }
        let deadline = ContinuousClock.now + .seconds(30)
        while try !ControlClient(address: address).status(timeout: .seconds(5)).nodes.contains(where: { $0.id == "b" && $0.alive }) {
            guard ContinuousClock.now < deadline else { throw ClusterError.timeout("node b did not join: \(node.output)") }
            try await Task.sleep(for: .milliseconds(100))
        }

        let before = try Self.receivedBytes(linkA)
        let driver = try RunningProcess(
            binaryPath("trading"),
            ["model", "train", "--config", config, "--out", folder + "/two", "--workers", "2", "--placement", "spread",
             "--collective", "ring"],
            environment: environment("a").merging(["SHOAL_ADDRESS": address]) { $1 })
        #expect(try await driver.waitForExit(timeout: .seconds(300)) == 0, "\(driver.output)\n\(node.output)")
        let received = try Self.receivedBytes(linkA) - before
        let up = driver.line(startingWith: "Workers up") ?? ""
        #expect(up.contains(" on a (") && up.contains(" on b (") && up.contains("ZeroMQ ring"), "\(up)")

        let expected = try SafeTensors.read(path: folder + "/one/model.safetensors").tensors
        let weights = try SafeTensors.read(path: folder + "/two/model.safetensors").tensors
        let difference = DistributedTrainingTests.relativeDifference(expected, weights)
        #expect(difference < 1e-5, "two hosts: ‖Δ‖/‖w‖ = \(difference)")
        // Each step the rank on b sends the rank on a half the buffer twice (reduce-scatter, all-gather).
        let parameters = try #require(driver.line(startingWith: "Model:")?.split(separator: " ").dropFirst().first.flatMap { Int($0) })
        let ring = 60 * (parameters + 1) * 4
        print("multi-host: host a received \(received) B over \(linkA); the ring's share from b \(ring) B; ‖Δ‖/‖w‖ \(difference)")
        #expect(received >= ring * 9 / 10, "host a received \(received) B over the link, the ring alone sends \(ring) B")
    }
}
