import Foundation
import ShoalTransport
import ShoalWire
import Testing

@testable import ShoalRuntime

/// A head that no node has joined yet: a driver's request waits for the first node instead of
/// failing as infeasible at once, and fails once the wait is over. The head runs here; the
/// driver and the node are DEALER sockets speaking its protocol over loopback.
@Suite struct FirstNodeTests {
    static func head(wait: Duration) async throws -> (Head, String) {
        var config = RuntimeConfig()
        config.firstNodeWait = wait
        let session = NSTemporaryDirectory() + "shoal-first-node-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let head = try await Head(bind: "tcp://127.0.0.1:0", advertisedHost: "127.0.0.1", sessionDirectory: session, config: config)
        return (head, session)
    }

    /// Connects a driver and asks for a lease of one CPU (request 2), an actor of one CPU
    /// (request 3) and a placement group of one one-CPU bundle (request 4).
    static func driverAskingForALease(at address: String) async throws -> Socket {
        let driver = try Socket.dealer(connectedTo: address)
        try driver.send(Envelope(1, .connectDriver(Shoal_V1_ConnectDriver())))
        let accepted = try await reply(on: driver, timeout: .seconds(30))
        guard case .driverAccepted = accepted?.envelope.body else {
            throw ClusterError.peerError("the head did not accept the driver: \(String(describing: accepted?.envelope.body))")
        }
        var lease = Shoal_V1_RequestLease()
        lease.resources = Resources(cpu: 1).proto
        try driver.send(Envelope(2, .requestLease(lease)))
        var actor = Shoal_V1_CreateActor()
        actor.typeName = "test.Counter"
        actor.resources = Resources(cpu: 1).proto
        try driver.send(Envelope(3, .createActor(actor)))
        var group = Shoal_V1_CreatePlacementGroup()
        group.bundles = [Resources(cpu: 1).proto]
        try driver.send(Envelope(4, .createPlacementGroup(group)))
        return driver
    }

    /// The next message within `timeout`, polled without blocking so that a waiting test holds
    /// no thread of the task pool the other tests need.
    static func reply(on socket: Socket, timeout: Duration) async throws -> Incoming? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let message = try socket.receive() { return try Incoming(message, routed: false) }
            try await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    @Test func aRequestWaitsForTheFirstNodeAndIsPlacedOnIt() async throws {
        let (head, session) = try await Self.head(wait: .seconds(30))
        defer {
            head.shutdown()
            try? FileManager.default.removeItem(atPath: session)
        }
        let driver = try await Self.driverAskingForALease(at: head.address)
        defer { driver.close() }
        // Nothing yet: no infeasible answer against an empty cluster.
        #expect(try await Self.reply(on: driver, timeout: .milliseconds(800)) == nil)

        let node = try Socket.dealer(connectedTo: head.address)
        defer { node.close() }
        var register = Shoal_V1_RegisterNode()
        register.nodeID = "late"
        register.address = "tcp://127.0.0.1:1"
        register.host = "test"
        register.total = Resources(cpu: 4).proto
        try node.send(Envelope(1, .registerNode(register)))
        var started: Shoal_V1_StartExecutor?
        var actor: Shoal_V1_StartActor?
        var deadline = ContinuousClock.now + .seconds(10)
        // Polled to the deadline: on a loaded machine a second can pass between messages.
        while started == nil || actor == nil, ContinuousClock.now < deadline {
            guard let message = try await Self.reply(on: node, timeout: .seconds(1)) else { continue }
            if case .startExecutor(let start) = message.envelope.body { started = start }
            if case .startActor(let start) = message.envelope.body { actor = start }
        }
        #expect(started?.resources == Resources(cpu: 1).proto, "the waiting lease goes to the node that joined")
        #expect(actor?.typeName == "test.Counter", "the waiting actor is started on the node that joined")
        var group: Shoal_V1_PlacementGroupCreated?
        deadline = ContinuousClock.now + .seconds(10)
        while group == nil, ContinuousClock.now < deadline {
            guard let message = try await Self.reply(on: driver, timeout: .seconds(1)) else { continue }
            if case .placementGroupCreated(let created) = message.envelope.body { group = created }
        }
        #expect(group?.bundleNodes == ["late"], "the waiting placement group is reserved on the node that joined")
    }

    @Test func aRequestFailsAsInfeasibleOnceTheWaitForANodeIsOver() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        let (head, session) = try await Self.head(wait: .milliseconds(1500))
        defer {
            head.shutdown()
            try? FileManager.default.removeItem(atPath: session)
        }
        let driver = try await Self.driverAskingForALease(at: head.address)
        defer { driver.close() }
        // The lease, the actor and the group each fail as infeasible once the wait is over.
        var refused: [UInt64: Shoal_V1_ErrorReply] = [:]
        while refused.count < 3, let answer = try await Self.reply(on: driver, timeout: .seconds(30)) {
            guard case .error(let error) = answer.envelope.body else { continue }
            refused[answer.envelope.requestID] = error
            if refused.count == 1 {
                let waited = clock.now - start
                // Not before the wait is over, and not much after it (a machine with four times
                // more work than cores took over 12 s).
                #expect(waited >= .milliseconds(1500) && waited < .seconds(30), "answered after \(waited)")
            }
        }
        #expect(refused.keys.sorted() == [2, 3, 4], "\(refused)")
        #expect(refused.values.allSatisfy { $0.code == .infeasible }, "\(refused)")
        #expect(refused[2]?.message.contains("nodes: none") == true, "\(String(describing: refused[2]))")
    }
}
