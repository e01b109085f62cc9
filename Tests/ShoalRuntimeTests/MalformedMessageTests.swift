import Foundation
import Shoal
import ShoalTestSupport
import ShoalTransport
import ShoalWire
import SwiftProtobuf
import Testing

/// Garbage on every listening socket: the head's, each node daemon's and each executor's.
@Suite(.serialized) struct MalformedMessageTests {
    /// Messages no Shoal process should accept, whatever the socket.
    static func garbage() -> [[[UInt8]]] {
        var generator = SystemRandomNumberGenerator()
        func random(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        func envelope(_ body: Shoal_V1_Envelope.OneOf_Body) -> [UInt8] {
            var envelope = Shoal_V1_Envelope()
            envelope.requestID = 99
            envelope.body = body
            return (try? envelope.serializedBytes()) ?? []
        }
        var badPush = Shoal_V1_PushTasks()
        var spec = Shoal_V1_TaskSpec()
        spec.taskID = 1
        spec.name = "test.square"
        spec.inputFrame = 7
        badPush.tasks = [spec]
        var unknownTask = Shoal_V1_PushTasks()
        var unknownSpec = Shoal_V1_TaskSpec()
        unknownSpec.taskID = 2
        unknownSpec.name = "no.such.task"
        unknownSpec.inputFrame = 1
        unknownTask.tasks = [unknownSpec]
        var badInput = Shoal_V1_PushTasks()
        var badInputSpec = Shoal_V1_TaskSpec()
        badInputSpec.taskID = 3
        badInputSpec.name = "test.square"
        badInputSpec.inputFrame = 1
        badInput.tasks = [badInputSpec]
        var upload = Shoal_V1_UploadPackage()
        upload.sha256 = "../../etc/passwd"
        var lease = Shoal_V1_RequestLease()
        lease.resources.amounts = ["CPU": -5]
        var heartbeat = Shoal_V1_NodeHeartbeat()
        heartbeat.nodeID = "impostor"
        return [
            [random(64)],
            [[]],
            [random(3), random(100), random(1)],
            [envelope(.pushTasks(badPush))],
            [envelope(.pushTasks(unknownTask)), random(5)],
            [envelope(.pushTasks(badInput)), [1, 2]],
            [envelope(.uploadPackage(upload)), random(10)],
            [envelope(.requestLease(lease))],
            [envelope(.nodeHeartbeat(heartbeat))],
            [envelope(.executorHello(Shoal_V1_ExecutorHello()))],
            [Array(envelope(.statusRequest(Shoal_V1_StatusRequest())).prefix(3))],
        ]
    }

    @Test func everyListeningSocketSurvivesGarbageAndCountsIt() async throws {
        let cluster = try await ClusterProcesses(cpus: 2)
        defer { cluster.stop() }
        try await cluster.addNode("second", cpus: 2)
        let holder = try cluster.driver(["hold", "120"])
        _ = try await holder.waitForLine(startingWith: "ready", timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(500))

        let before = try cluster.status()
        let executors = before.nodes.flatMap(\.executorAddresses)
        #expect(!executors.isEmpty, "an executor should be listening")
        let targets = [cluster.address] + before.nodes.map(\.address) + executors
        for target in targets {
            let socket = try Socket(.dealer)
            try socket.connect(target)
            for message in Self.garbage() { try socket.send(message, blocking: true) }
            // Replies (errors, failed results) may come back; none may be a crash.
            try await Task.sleep(for: .milliseconds(200))
            while try socket.receive() != nil {}
            socket.close()
        }
        // Each daemon counts what it dropped when its loop gets to it: on a loaded machine that
        // takes a while, so the counts are awaited (up to 30 s) rather than given a fixed time.
        var after = try cluster.status()
        for _ in 0..<150 {
            if after.headMalformedMessages >= 5 && after.nodes.allSatisfy({ $0.malformedMessages >= 3 }) { break }
            try await Task.sleep(for: .milliseconds(200))
            after = try cluster.status()
        }
        #expect(after.headMalformedMessages >= 5)
        for node in after.nodes {
            #expect(node.alive, "node \(node.id) should still be alive")
            #expect(node.malformedMessages >= 3, "node \(node.id) should count the garbage it got")
        }
        #expect(holder.isRunning, "the holding driver should be unaffected")
        let driver = try cluster.driver(["mapreduce", "300"])
        #expect(try await driver.waitForExit(timeout: .seconds(120)) == 0)
        #expect(driver.line(startingWith: "sum=")?.hasPrefix("sum=\((0..<300).reduce(0) { $0 + $1 * $1 })") == true)
        holder.signal(SIGTERM)
    }
}
