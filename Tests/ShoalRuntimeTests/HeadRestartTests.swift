import Foundation
import Shoal
import ShoalTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A head killed and started again on the same port and store: node daemons rejoin it, and
/// detached actors are rebuilt from the store.
@Suite(.serialized) struct HeadRestartTests {
    @Test func nodesRejoinAndDetachedActorsAreRebuiltAfterTheHeadIsKilled() async throws {
        let session = NSTemporaryDirectory() + "shoal-head-restart-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: session) }
        let environment = ["SHOAL_SESSION_DIR": session, "SHOAL_HEARTBEAT_MS": "200", "SHOAL_LOG_LEVEL": "warning"]
        func startHead(port: String) async throws -> (RunningProcess, String) {
            let head = try RunningProcess(
                binaryPath("cluster"), ["start", "--head", "--port", port, "--num-cpus", "1", "--node-id", "main", "--block"],
                environment: environment)
            let line = try await head.waitForLine(startingWith: "Shoal head started at", timeout: .seconds(30))
            return (head, String(line.split(separator: " ")[4]))
        }
        var (head, address) = try await startHead(port: "0")
        let port = String(address.split(separator: ":").last ?? "0")
        let node = try RunningProcess(
            binaryPath("cluster"), ["start", "--address", address, "--num-cpus", "1", "--node-id", "second", "--block"],
            environment: environment)
        defer {
            head.killTree()
            node.killTree()
        }
        func driver(_ arguments: [String]) async throws -> RunningProcess {
            let process = try RunningProcess(
                binaryPath("shoal-testjob"), arguments, environment: environment.merging(["SHOAL_ADDRESS": address]) { $1 })
            _ = try await process.waitForExit(timeout: .seconds(60))
            return process
        }
        func nodes() -> [String] {
            ((try? ControlClient(address: address).status(timeout: .seconds(2)))?.nodes.filter(\.alive).map(\.id) ?? []).sorted()
        }
        var deadline = ContinuousClock.now + .seconds(30)
        while nodes() != ["main", "second"] && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(nodes() == ["main", "second"])

        let spawned = try await driver(["detached", "5", "keeper"])
        #expect(spawned.line(startingWith: "spawned keeper") != nil, "\(spawned.output)")
        #expect(try await driver(["lookup", "1", "keeper"]).line(startingWith: "found") == "found count=106")

        head.signal(SIGKILL)
        _ = try await head.waitForExit(timeout: .seconds(20))
        (head, address) = try await startHead(port: port)

        // The node daemon that outlived the head joins the new one by itself.
        deadline = ContinuousClock.now + .seconds(30)
        while nodes() != ["main", "second"] && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(nodes() == ["main", "second"], "node daemons rejoin a restarted head")

        // The detached actor is back under its name, its state rebuilt by its initialiser.
        var found: String?
        deadline = ContinuousClock.now + .seconds(60)
        while found == nil && ContinuousClock.now < deadline {
            found = try await driver(["lookup", "1", "keeper"]).line(startingWith: "found")
            if found == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(found == "found count=101", "a detached actor is rebuilt by a restarted head")
        head.signal(SIGTERM)
        node.signal(SIGTERM)
        _ = try await head.waitForExit(timeout: .seconds(20))
        _ = try await node.waitForExit(timeout: .seconds(20))
    }
}
