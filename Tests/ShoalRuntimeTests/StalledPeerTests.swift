import Foundation
import ShoalTransport
import ShoalWire
import Testing

@testable import ShoalRuntime

/// Peers that stall longer than the head's timeouts and then come back, or die for good: a node
/// declared dead while a lease in one of its placement group's bundles waited for its executor,
/// a node whose bundles must move, a node that joins twice or restarts under its id, an actor
/// host's late report, and a driver whose job the head ended for its silence. The head runs
/// here; nodes and the raw drivers are DEALER sockets speaking its protocol over loopback. One
/// test at a time: each counts on its nodes' heartbeats coming within the head's node timeout.
@Suite(.serialized) struct StalledPeerTests {
    /// The node timeout of these heads: long enough for a loaded machine to finish a test's
    /// set-up while its nodes beat, short enough to wait out.
    static let nodeTimeout = Duration.seconds(8)

    /// A head in this process with its session folder and a raw driver connected to it; `stop`
    /// ends them.
    struct TestHead {
        let head: Head
        let session: String
        let driver: Socket
        var address: String { head.address }

        init(_ configure: (inout RuntimeConfig) -> Void = { _ in }) async throws {
            var config = RuntimeConfig()
            config.heartbeatInterval = .milliseconds(100)
            config.nodeTimeout = StalledPeerTests.nodeTimeout
            // The raw drivers send no heartbeats: their jobs must not end under a slow test.
            config.driverTimeout = .seconds(600)
            configure(&config)
            session = NSTemporaryDirectory() + "shoal-stalled-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            head = try await Head(bind: "tcp://127.0.0.1:0", advertisedHost: "127.0.0.1", sessionDirectory: session, config: config)
            driver = try StalledPeerTests.driver(at: head.address)
        }

        func stop() {
            driver.close()
            head.shutdown()
            try? FileManager.default.removeItem(atPath: session)
        }
    }

    /// Nodes `a` and `b`, each with `cpus`, joined in that order (the head tries `a` first), and
    /// a beat of both.
    static func twoNodes(at address: String, cpus: Double) async throws -> (a: FakeNode, b: FakeNode, both: () -> Void) {
        let a = try FakeNode("a", at: address, cpus: cpus)
        #expect(try await a.joined())
        let b = try FakeNode("b", at: address, cpus: cpus)
        // a beats too while b joins: the head may be slow to answer on a loaded machine.
        let joined = try await StalledPeerTests.next(on: b.socket, beat: {
            a.beat()
            b.beat()
        }) { message -> Bool? in
            if case .nodeRegistered = message.envelope.body { return true }
            return nil
        }
        #expect(joined == true)
        return (a, b, {
            a.beat()
            b.beat()
        })
    }

    /// A value used by one thread at a time, handed from the test's task to a waiting thread and back.
    struct Handed<Value>: @unchecked Sendable { let value: Value }

    /// The first message on `socket` within `timeout` that `match` takes; `beat` runs every
    /// 100 ms at most (nodes' heartbeats). The wait runs on a thread of its own: a heartbeat
    /// must not depend on the task pool getting round to this test on a loaded machine, and a
    /// blocking wait must not hold a pool thread the other tests need.
    static func next<T>(
        on socket: Socket, within timeout: Duration = .seconds(30), beat: @escaping () -> Void = {},
        _ match: @escaping (Incoming) -> T?
    ) async throws -> T? {
        let wait = Handed(value: { () throws -> T? in
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                beat()
                guard let message = try socket.receive(timeout: .milliseconds(100)) else { continue }
                if let found = match(try Incoming(message, routed: false)) { return found }
            }
            return nil
        })
        let result = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Handed<T?>, any Error>) in
            Thread { continuation.resume(with: Result { Handed(value: try wait.value()) }) }.start()
        }
        return result.value
    }

    /// A node speaking the protocol on its own socket.
    final class FakeNode {
        let id: String
        let socket: Socket

        init(_ id: String, at address: String, cpus: Double, pid: Int32 = 1) throws {
            self.id = id
            socket = try Socket.dealer(connectedTo: address)
            try register(cpus: cpus, pid: pid)
        }

        deinit { socket.close() }

        func register(cpus: Double, pid: Int32 = 1) throws {
            var register = Shoal_V1_RegisterNode()
            register.nodeID = id
            register.address = "tcp://127.0.0.1:1"
            register.host = "test"
            register.pid = pid
            register.total = Resources(cpu: cpus).proto
            try socket.send(Envelope(1, .registerNode(register)))
        }

        /// Waits for the head's answer to a registration, beating meanwhile.
        func joined() async throws -> Bool {
            try await StalledPeerTests.next(on: socket, beat: beat) { message -> Bool? in
                if case .nodeRegistered = message.envelope.body { return true }
                return nil
            } == true
        }

        func beat() {
            var beat = Shoal_V1_NodeHeartbeat()
            beat.nodeID = id
            _ = try? socket.send(Envelope(0, .nodeHeartbeat(beat)))
        }

        /// The lease id of the next executor the head asks this node to start.
        func nextStart(beating: Bool = true, within timeout: Duration = .seconds(30)) async throws -> UInt64? {
            try await StalledPeerTests.next(on: socket, within: timeout, beat: beating ? beat : {}) { message -> UInt64? in
                if case .startExecutor(let start) = message.envelope.body { return start.leaseID }
                return nil
            }
        }
    }

    /// A raw driver, connected.
    static func driver(at address: String) throws -> Socket {
        let driver = try Socket.dealer(connectedTo: address)
        try driver.send(Envelope(1, .connectDriver(Shoal_V1_ConnectDriver())))
        return driver
    }

    static func createGroup(
        _ bundles: [Resources], strategy: Shoal_V1_PlacementStrategy = .bundlesPack, from driver: Socket, beat: @escaping () -> Void
    ) async throws -> Shoal_V1_PlacementGroupCreated? {
        var group = Shoal_V1_CreatePlacementGroup()
        group.bundles = bundles.map(\.proto)
        group.strategy = strategy
        try driver.send(Envelope(2, .createPlacementGroup(group)))
        return try await next(on: driver, beat: beat) { message -> Shoal_V1_PlacementGroupCreated? in
            if case .placementGroupCreated(let created) = message.envelope.body { return created }
            return nil
        }
    }

    /// Asks for a lease of one CPU (as request `id`), in a group's bundle when `group` is given.
    static func requestLease(in group: String = "", bundle: Int32 = -1, id: UInt64 = 3, from driver: Socket) throws {
        var lease = Shoal_V1_RequestLease()
        lease.resources = Resources(cpu: 1).proto
        lease.placementGroupID = group
        lease.bundleIndex = bundle
        try driver.send(Envelope(id, .requestLease(lease)))
    }

    /// Asks for a one-CPU actor (as request `id`) that may be rebuilt `maxRestarts` times.
    static func createActor(
        id: UInt64, maxRestarts: UInt32, from driver: Socket, _ configure: (inout Shoal_V1_CreateActor) -> Void = { _ in }
    ) throws {
        var create = Shoal_V1_CreateActor()
        create.typeName = "test.Counter"
        create.resources = Resources(cpu: 1).proto
        create.maxRestarts = maxRestarts
        configure(&create)
        try driver.send(Envelope(id, .createActor(create)))
    }

    static func status(from driver: Socket, beat: @escaping () -> Void = {}) async throws -> Shoal_V1_StatusReply? {
        try driver.send(Envelope(4, .statusRequest(Shoal_V1_StatusRequest())))
        return try await next(on: driver, beat: beat) { message -> Shoal_V1_StatusReply? in
            if case .statusReply(let status) = message.envelope.body { return status }
            return nil
        }
    }

    static func availableCPUs(of node: String, in status: Shoal_V1_StatusReply?) -> Double? {
        status?.nodes.first { $0.nodeID == node }.map { Resources($0.available)[Resources.cpu] }
    }

    /// A node that dies for good: the bundles it held are placed on another node, and the
    /// request that waited in one of them runs there.
    @Test func theBundlesOfANodeThatDiedArePlacedAgainOnAnotherNode() async throws {
        let head = try await TestHead()
        defer { head.stop() }
        let (dying, staying, both) = try await Self.twoNodes(at: head.address, cpus: 2)
        let driver = head.driver
        let group = try #require(
            try await Self.createGroup([Resources(cpu: 1), Resources(cpu: 1)], strategy: .bundlesStrictPack, from: driver, beat: both))
        #expect(group.bundleNodes == ["a", "a"], "strict pack on the first node that fits")
        try Self.requestLease(in: group.placementGroupID, bundle: 1, from: driver)

        // Node a never answers again; b keeps beating and gets the bundles and the lease.
        let moved = try await staying.nextStart()
        #expect(moved != nil, "the lease in the group runs on the node its bundles moved to")
        let status = try await Self.status(from: driver, beat: staying.beat)
        #expect(Self.availableCPUs(of: "b", in: status) == 0, "both bundles are reserved on b")
        #expect(status?.pendingPlacementGroups == 0)
        #expect(status?.groups.first?.state == .created)
        #expect(status?.groups.first?.bundleNodes == ["b", "b"], "both bundles moved to b")
        #expect(status?.nodes.first { $0.nodeID == "a" }?.alive == false)
    }

    /// A request for any bundle of a group, placed in a bundle on a node that then dies, is
    /// placed again as it was asked: in any bundle, here the one on the node that stays.
    @Test func aRequestForAnyBundlePlacedOnANodeThatDiedGoesToAnotherBundle() async throws {
        let head = try await TestHead()
        defer { head.stop() }
        let (dying, staying, both) = try await Self.twoNodes(at: head.address, cpus: 1)
        let driver = head.driver
        let group = try #require(
            try await Self.createGroup([Resources(cpu: 1), Resources(cpu: 1)], strategy: .bundlesStrictSpread, from: driver, beat: both))
        #expect(group.bundleNodes == ["a", "b"])
        try Self.requestLease(in: group.placementGroupID, bundle: -1, from: driver)
        #expect(try await dying.nextStart() != nil, "the first bundle with room is on a")
        // a dies for good; its bundle has nowhere to go (strict spread), the request goes to b's.
        #expect(try await staying.nextStart() != nil, "the request is placed again in any bundle, as asked")
        // The status says which bundle waits for a node.
        let status = try #require(try await Self.status(from: driver, beat: staying.beat))
        #expect(status.groups.first?.state == .rescheduling)
        #expect(status.groups.first?.bundleNodes == ["", "b"])
        let rendered = ClusterStatus(status).rendered
        #expect(rendered.contains("RESCHEDULING") && rendered.contains("(-)"), "\(rendered)")
    }

    /// A node back from a stall gets one refusal per heartbeat it sent meanwhile, and joins
    /// again once per refusal: the second join must not forget what the node took since the first.
    @Test func aNodeThatJoinsTwiceKeepsWhatItHoldsSinceTheFirstJoin() async throws {
        let head = try await TestHead()
        defer { head.stop() }
        let node = try FakeNode("n", at: head.address, cpus: 2)
        let driver = head.driver
        try Self.requestLease(id: 2, from: driver)
        #expect(try await node.nextStart() != nil)
        try node.register(cpus: 2)
        #expect(try await node.joined(), "the second join is answered too")
        #expect(Self.availableCPUs(of: "n", in: try await Self.status(from: driver, beat: node.beat)) == 1, "the leased CPU stays counted")
    }

    /// A daemon restarted under the same id (same connection id) before its old self timed out
    /// is a new node: what the old one ran is failed or placed again, nothing stays counted.
    @Test func aDaemonRestartedUnderItsIdIsANewNode() async throws {
        let head = try await TestHead()
        defer { head.stop() }
        let node = try FakeNode("n", at: head.address, cpus: 2, pid: 100)
        let driver = head.driver
        try Self.requestLease(id: 2, from: driver)
        try Self.createActor(id: 3, maxRestarts: 1, from: driver)
        /// The lease id and actor id the head next asks the node to start.
        func starts() async throws -> (lease: UInt64?, actor: String?) {
            var found: (lease: UInt64?, actor: String?) = (nil, nil)
            _ = try await Self.next(on: node.socket, beat: node.beat) { message -> Bool? in
                if case .startExecutor(let start) = message.envelope.body { found.lease = start.leaseID }
                if case .startActor(let start) = message.envelope.body { found.actor = start.actorID }
                return found.lease != nil && found.actor != nil ? true : nil
            }
            return found
        }
        let first = try await starts()
        #expect(first.lease != nil && first.actor != nil)
        try node.register(cpus: 2, pid: 101)
        let second = try await starts()
        #expect(second.lease != nil && second.lease != first.lease, "the lease the old daemon never started is placed on the new one")
        #expect(second.actor == first.actor, "the actor waits for the new daemon and is rebuilt there, not refused")
        #expect(Self.availableCPUs(of: "n", in: try await Self.status(from: driver, beat: node.beat)) == 0, "the new lease and actor count, once")
    }

    /// An actor host on a node declared dead may still report the actor built once its node
    /// wakes: the actor, rebuilt elsewhere meanwhile, is not sent to the dead host.
    @Test func aLateActorReportFromANodeDeclaredDeadIsIgnored() async throws {
        let head = try await TestHead()
        defer { head.stop() }
        let (stalling, staying, both) = try await Self.twoNodes(at: head.address, cpus: 1)
        let driver = head.driver
        try Self.createActor(id: 5, maxRestarts: 1, from: driver) {
            $0.strategy = .nodeAffinity
            $0.nodeID = "a"
            $0.soft = true
        }
        let started = try await Self.next(on: stalling.socket, beat: both) { message -> Shoal_V1_StartActor? in
            if case .startActor(let start) = message.envelope.body { return start }
            return nil
        }
        let start = try #require(started, "the actor goes to node a first")

        // a stalls past its timeout; the actor is rebuilt on b.
        let rebuilt = try await Self.next(on: staying.socket, within: Self.nodeTimeout * 5, beat: staying.beat) { message -> Bool? in
            if case .startActor(let again) = message.envelope.body { return again.actorID == start.actorID }
            return nil
        }
        #expect(rebuilt == true, "the actor is rebuilt on the node that stayed")
        // a wakes and forwards its host's report; then b reports.
        var late = Shoal_V1_ActorStarted()
        late.actorID = start.actorID
        late.executorID = "a-e1"
        late.address = "tcp://127.0.0.1:7"
        try stalling.socket.send(Envelope(0, .actorStarted(late)))
        var built = late
        built.executorID = "b-e1"
        built.address = "tcp://127.0.0.1:8"
        try staying.socket.send(Envelope(0, .actorStarted(built)))
        let location = try await Self.next(on: driver, beat: staying.beat) { message -> String? in
            if case .actorLocation(let location) = message.envelope.body, message.envelope.requestID == 5 { return location.address }
            return nil
        }
        #expect(location == "tcp://127.0.0.1:8", "the driver is sent to the host that built the actor now")
    }

    /// An executor that cannot start (it exits before it says hello) is started again a few
    /// times, then the driver is told why, instead of executors being started for ever.
    @Test func aLeaseWhoseExecutorsCannotStartFailsWithTheReason() async throws {
        let head = try await TestHead()
        defer { head.stop() }
        let node = try FakeNode("n", at: head.address, cpus: 2)
        let driver = head.driver
        try Self.requestLease(id: 2, from: driver)
        var starts = 0
        while let leaseID = try await node.nextStart(), starts < 10 {
            starts += 1
            var exited = Shoal_V1_ExecutorExited()
            exited.leaseID = leaseID
            exited.reason = "could not start: exec format error"
            try node.socket.send(Envelope(0, .executorExited(exited)))
            if starts == Head.executorStartAttempts { break }
        }
        #expect(starts == Head.executorStartAttempts)
        let refusal = try await Self.next(on: driver, beat: node.beat) { message -> Shoal_V1_ErrorReply? in
            if case .error(let error) = message.envelope.body, message.envelope.requestID == 2 { return error }
            return nil
        }
        #expect(refusal?.code == .unavailable)
        #expect(refusal?.message.contains("exec format error") == true, "\(String(describing: refusal))")
        #expect(try await node.nextStart(within: .seconds(1)) == nil, "no executor is started again")
    }

    /// An actor host that exits while it builds an actor (before it reports it built): the
    /// actor is rebuilt while it has restarts left, then its creator is told it could not start.
    @Test func anActorWhoseHostExitsWhileBuildingItIsRebuiltThenRefused() async throws {
        let head = try await TestHead()
        defer { head.stop() }
        let node = try FakeNode("n", at: head.address, cpus: 2)
        let driver = head.driver
        try Self.createActor(id: 5, maxRestarts: 1, from: driver)
        func nextActorStart() async throws -> String? {
            try await Self.next(on: node.socket, beat: node.beat) { message -> String? in
                if case .startActor(let start) = message.envelope.body { return start.actorID }
                return nil
            }
        }
        func hostExits(building actor: String, host: String) throws {
            var exited = Shoal_V1_ExecutorExited()
            exited.executorID = host
            exited.reason = "killed by signal 9"
            exited.startingActorIds = [actor]
            try node.socket.send(Envelope(0, .executorExited(exited)))
        }
        let actor = try #require(try await nextActorStart())
        try hostExits(building: actor, host: "n-e1")
        #expect(try await nextActorStart() == actor, "rebuilt once: it has a restart left")
        try hostExits(building: actor, host: "n-e2")
        let refusal = try await Self.next(on: driver, beat: node.beat) { message -> String? in
            if case .error(let error) = message.envelope.body, message.envelope.requestID == 5 { return error.message }
            return nil
        }
        #expect(refusal?.contains("while building it") == true, "\(String(describing: refusal))")
    }

    @Test func aDriverWhoseJobTheHeadEndedForSilenceFailsInsteadOfWaiting() async throws {
        let head = try await TestHead { $0.driverTimeout = .milliseconds(600) }
        defer { head.stop() }
        // A small stand-in for the job's executable: the head stores it as the job's package.
        let executable = head.session + "-package"
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
