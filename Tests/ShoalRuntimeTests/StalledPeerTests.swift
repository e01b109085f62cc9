import Foundation
import ShoalTransport
import ShoalWire
import Testing

@testable import ShoalRuntime

/// Peers that stall longer than the head's timeouts and then come back: a node declared dead
/// while a lease in one of its placement group's bundles waited for its executor, and a driver
/// whose job the head ended for its silence. The head runs here; the node and the first driver
/// are DEALER sockets speaking its protocol over loopback.
@Suite struct StalledPeerTests {
    static func head(_ configure: (inout RuntimeConfig) -> Void) async throws -> (Head, String) {
        var config = RuntimeConfig()
        config.heartbeatInterval = .milliseconds(100)
        configure(&config)
        let session = NSTemporaryDirectory() + "shoal-stalled-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let head = try await Head(bind: "tcp://127.0.0.1:0", advertisedHost: "127.0.0.1", sessionDirectory: session, config: config)
        return (head, session)
    }

    /// The first message on `socket` within `timeout` that `match` takes; `beat` runs between
    /// waits of 100 ms at most (a node's heartbeat, on the same thread as its socket).
    static func next<T>(
        on socket: Socket, within timeout: Duration, beat: () -> Void = {}, _ match: (Incoming) -> T?
    ) throws -> T? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            beat()
            guard let message = try socket.receive(timeout: .milliseconds(100)) else { continue }
            if let found = match(try Incoming(message, routed: false)) { return found }
        }
        return nil
    }

    static func register(_ node: Socket, id: String, cpus: Double) throws {
        var register = Shoal_V1_RegisterNode()
        register.nodeID = id
        register.address = "tcp://127.0.0.1:1"
        register.host = "test"
        register.total = Resources(cpu: cpus).proto
        try node.send(Envelope(1, .registerNode(register)))
    }

    @Test func aBundleLeaseOnANodeDeclaredDeadIsPlacedAgainWhenTheNodeRejoins() async throws {
        let (head, session) = try await Self.head { $0.nodeTimeout = .seconds(1) }
        defer {
            head.shutdown()
            try? FileManager.default.removeItem(atPath: session)
        }
        let node = try Socket.dealer(connectedTo: head.address)
        defer { node.close() }
        try Self.register(node, id: "n", cpus: 2)
        let joined = try Self.next(on: node, within: .seconds(10)) { message -> Bool? in
            if case .nodeRegistered = message.envelope.body { return true }
            return nil
        }
        #expect(joined == true)

        let driver = try Socket.dealer(connectedTo: head.address)
        defer { driver.close() }
        try driver.send(Envelope(1, .connectDriver(Shoal_V1_ConnectDriver())))
        var group = Shoal_V1_CreatePlacementGroup()
        group.bundles = [Resources(cpu: 1).proto]
        try driver.send(Envelope(2, .createPlacementGroup(group)))
        let groupID = try Self.next(on: driver, within: .seconds(10)) { message -> String? in
            if case .placementGroupCreated(let created) = message.envelope.body { return created.placementGroupID }
            return nil
        }
        let placed = try #require(groupID)
        var lease = Shoal_V1_RequestLease()
        lease.resources = Resources(cpu: 1).proto
        lease.placementGroupID = placed
        lease.bundleIndex = 0
        try driver.send(Envelope(3, .requestLease(lease)))

        // The node is told to start an executor, then stalls: no executor, no heartbeat.
        var beat = Shoal_V1_NodeHeartbeat()
        beat.nodeID = "n"
        try node.send(Envelope(0, .nodeHeartbeat(beat)))
        let first = try Self.next(on: node, within: .seconds(10)) { message -> UInt64? in
            if case .startExecutor(let start) = message.envelope.body { return start.leaseID }
            return nil
        }
        #expect(first != nil, "the lease in the bundle goes to the node")
        try await Task.sleep(for: .seconds(2))

        // Back from the stall: the head has declared it dead, so it joins again.
        try node.send(Envelope(0, .nodeHeartbeat(beat)))
        let refused = try Self.next(on: node, within: .seconds(10)) { message -> String? in
            if case .error(let error) = message.envelope.body, error.code == .unknownPeer { return error.message }
            return nil
        }
        #expect(refused?.contains("declared dead") == true, "\(String(describing: refused))")
        try Self.register(node, id: "n", cpus: 2)
        let second = try Self.next(on: node, within: .seconds(10)) { message -> UInt64? in
            if case .startExecutor(let start) = message.envelope.body { return start.leaseID }
            return nil
        }
        #expect(second != nil, "the waiting lease is placed in its bundle again once the node rejoins")
        #expect(second != first)

        // The only node there is, back, holds the bundle again: one of its two CPUs is reserved.
        try node.send(Envelope(0, .nodeHeartbeat(beat)))
        try driver.send(Envelope(4, .statusRequest(Shoal_V1_StatusRequest())))
        let available = try Self.next(on: driver, within: .seconds(10)) { message -> Double? in
            if case .statusReply(let status) = message.envelope.body {
                return status.nodes.first { $0.nodeID == "n" }.map { Resources($0.available)[Resources.cpu] }
            }
            return nil
        }
        #expect(available == 1, "the bundle is reserved on the node again")
    }

    /// A node that dies for good: the bundles it held are placed on another node, and the
    /// request that waited in one of them runs there.
    @Test func theBundlesOfANodeThatDiedArePlacedAgainOnAnotherNode() async throws {
        let (head, session) = try await Self.head { $0.nodeTimeout = .seconds(1) }
        defer {
            head.shutdown()
            try? FileManager.default.removeItem(atPath: session)
        }
        let dying = try Socket.dealer(connectedTo: head.address)
        defer { dying.close() }
        let staying = try Socket.dealer(connectedTo: head.address)
        defer { staying.close() }
        try Self.register(dying, id: "a", cpus: 2)
        _ = try Self.next(on: dying, within: .seconds(10)) { message -> Bool? in
            if case .nodeRegistered = message.envelope.body { return true }
            return nil
        }
        try Self.register(staying, id: "b", cpus: 2)
        var beat = Shoal_V1_NodeHeartbeat()
        beat.nodeID = "b"
        let heartbeat: () -> Void = { _ = try? staying.send(Envelope(0, .nodeHeartbeat(beat))) }

        let driver = try Socket.dealer(connectedTo: head.address)
        defer { driver.close() }
        try driver.send(Envelope(1, .connectDriver(Shoal_V1_ConnectDriver())))
        var group = Shoal_V1_CreatePlacementGroup()
        group.bundles = [Resources(cpu: 1).proto, Resources(cpu: 1).proto]
        group.strategy = .bundlesStrictPack
        try driver.send(Envelope(2, .createPlacementGroup(group)))
        let created = try Self.next(on: driver, within: .seconds(10)) { message -> Shoal_V1_PlacementGroupCreated? in
            if case .placementGroupCreated(let created) = message.envelope.body { return created }
            return nil
        }
        let placed = try #require(created)
        #expect(placed.bundleNodes == ["a", "a"], "strict pack on the first node that fits")
        var lease = Shoal_V1_RequestLease()
        lease.resources = Resources(cpu: 1).proto
        lease.placementGroupID = placed.placementGroupID
        lease.bundleIndex = 1
        try driver.send(Envelope(3, .requestLease(lease)))

        // Node a never answers again; b keeps beating and gets the bundles and the lease.
        let moved = try Self.next(on: staying, within: .seconds(10), beat: heartbeat) { message -> Bool? in
            if case .startExecutor(let start) = message.envelope.body { return start.resources == Resources(cpu: 1).proto }
            return nil
        }
        #expect(moved == true, "the lease in the group runs on the node its bundles moved to")
        heartbeat()
        try driver.send(Envelope(4, .statusRequest(Shoal_V1_StatusRequest())))
        let status = try Self.next(on: driver, within: .seconds(10)) { message -> Shoal_V1_StatusReply? in
            if case .statusReply(let status) = message.envelope.body { return status }
            return nil
        }
        let b = status?.nodes.first { $0.nodeID == "b" }
        #expect(b.map { Resources($0.available)[Resources.cpu] } == 0, "both bundles are reserved on b")
        #expect(status?.pendingPlacementGroups == 0)
        #expect(status?.nodes.first { $0.nodeID == "a" }?.alive == false)
    }

    /// A node back from a stall gets one refusal per heartbeat it sent meanwhile, and joins
    /// again once per refusal: the second join must not forget what the node took since the first.
    @Test func aNodeThatJoinsTwiceKeepsWhatItHoldsSinceTheFirstJoin() async throws {
        let (head, session) = try await Self.head { _ in }
        defer {
            head.shutdown()
            try? FileManager.default.removeItem(atPath: session)
        }
        let node = try Socket.dealer(connectedTo: head.address)
        defer { node.close() }
        try Self.register(node, id: "n", cpus: 2)
        let driver = try Socket.dealer(connectedTo: head.address)
        defer { driver.close() }
        try driver.send(Envelope(1, .connectDriver(Shoal_V1_ConnectDriver())))
        var lease = Shoal_V1_RequestLease()
        lease.resources = Resources(cpu: 1).proto
        try driver.send(Envelope(2, .requestLease(lease)))
        let started = try Self.next(on: node, within: .seconds(10)) { message -> Bool? in
            if case .startExecutor = message.envelope.body { return true }
            return nil
        }
        #expect(started == true)
        try Self.register(node, id: "n", cpus: 2)
        let joined = try Self.next(on: node, within: .seconds(10)) { message -> Bool? in
            if case .nodeRegistered = message.envelope.body { return true }
            return nil
        }
        #expect(joined == true, "the second join is answered too")
        try driver.send(Envelope(3, .statusRequest(Shoal_V1_StatusRequest())))
        let available = try Self.next(on: driver, within: .seconds(10)) { message -> Double? in
            if case .statusReply(let status) = message.envelope.body {
                return status.nodes.first { $0.nodeID == "n" }.map { Resources($0.available)[Resources.cpu] }
            }
            return nil
        }
        #expect(available == 1, "the leased CPU stays counted")
    }

    @Test func aDriverWhoseJobTheHeadEndedForSilenceFailsInsteadOfWaiting() async throws {
        let (head, session) = try await Self.head { $0.driverTimeout = .milliseconds(600) }
        defer {
            head.shutdown()
            try? FileManager.default.removeItem(atPath: session)
        }
        // A small stand-in for the job's executable: the head stores it as the job's package.
        let executable = session + "-package"
        try Files.replace(executable, with: Array("#!/bin/sh\n".utf8), mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: executable) }
        var config = RuntimeConfig()
        config.heartbeatInterval = .milliseconds(100)
        let driver = try await DriverCore.connect(headAddress: head.address, executable: executable, config: config)
        _ = try await driver.status()

        // The driver's loop stalls for longer than the head waits for a driver.
        driver.loop.execute { usleep(1_500_000) }
        var failure: String?
        let deadline = ContinuousClock.now + .seconds(10)
        while failure == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            do {
                _ = try await driver.status(timeout: .seconds(2))
            } catch {
                failure = "\(error)"
            }
        }
        #expect(failure?.contains("was ended by the head") == true, "\(String(describing: failure))")
        #expect(failure?.contains("silent") == true, "the reason the head gave: \(String(describing: failure))")
        await driver.disconnect()
    }
}
