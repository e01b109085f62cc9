import Foundation
import ShoalTransport
import ShoalWire
import Testing

@testable import ShoalRuntime

/// Sender binding (security issue, item 3): a lease's executor reports count only from the node
/// that holds the lease. A forged `ExecutorStarted` (an attacker's address for the driver to send
/// its tasks to) or `ExecutorExited` from any other peer changes nothing.
@Suite(.serialized) struct SenderBindingTests {
    typealias Stalled = StalledPeerTests

    @Test func executorReportsCountOnlyFromTheLeasesNode() async throws {
        let head = try await Stalled.TestHead()
        defer { head.stop() }
        let node = try Stalled.FakeNode("a", at: head.address, cpus: 2)
        #expect(try await node.joined())
        try Stalled.requestLease(from: head.driver)
        let lease = try #require(try await node.nextStart())

        // Another peer (here a second node) forges the executor's start and its exit.
        let forger = try Stalled.FakeNode("b", at: head.address, cpus: 1)
        #expect(try await forger.joined())
        var forged = Shoal_V1_ExecutorStarted()
        forged.leaseID = lease
        forged.executorID = "evil"
        forged.address = "tcp://127.0.0.1:9"
        try forger.socket.send(Envelope(0, .executorStarted(forged)))
        var exit = Shoal_V1_ExecutorExited()
        exit.leaseID = lease
        exit.executorID = "evil"
        exit.reason = "forged"
        try forger.socket.send(Envelope(0, .executorExited(exit)))
        let early = try await Stalled.next(
            on: head.driver, within: .seconds(2),
            beat: {
                node.beat(); forger.beat()
            }
        ) {
            message -> String? in
            switch message.envelope.body {
            case .leaseGranted(let granted): "granted at \(granted.executorAddress)"
            case .error(let error): "error: \(error.message)"
            default: nil
            }
        }
        #expect(early == nil, "a forged report reached the driver: \(early ?? "")")

        // The lease's own node reports, and the driver gets its executor.
        var started = Shoal_V1_ExecutorStarted()
        started.leaseID = lease
        started.executorID = "real"
        started.address = "tcp://127.0.0.1:7"
        try node.socket.send(Envelope(0, .executorStarted(started)))
        let granted = try await Stalled.next(
            on: head.driver,
            beat: {
                node.beat(); forger.beat()
            }
        ) {
            message -> Shoal_V1_LeaseGranted? in
            if case .leaseGranted(let granted) = message.envelope.body { return granted }
            return nil
        }
        #expect(granted?.executorID == "real" && granted?.executorAddress == "tcp://127.0.0.1:7")
    }
}
