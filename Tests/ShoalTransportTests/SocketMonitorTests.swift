import Foundation
import ShoalTransport
import Testing

/// The disconnection monitor a driver keeps on its head connection.
@Suite struct SocketMonitorTests {
    /// A pair of sockets on `context` that can still exchange a message within five seconds.
    static func messagesStillMove(on context: ZMQContext) throws -> Bool {
        let server = try Socket(.router, context: context)
        let client = try Socket.dealer(connectedTo: try server.bind("tcp://127.0.0.1:0"), context: context)
        try client.send([Array("ping".utf8)], blocking: true)
        return try server.receive(timeout: .seconds(5)) != nil
    }

    @Test func aMonitorReportsADisconnectionAndOnceStoppedLeavesTheIOThreadFree() throws {
        // A context of its own: had its I/O thread stalled, the other tests' sockets go on.
        let context = ZMQContext()
        let server = try Socket(.router, context: context)
        let address = try server.bind("tcp://127.0.0.1:0")
        let client = try Socket.dealer(connectedTo: address, context: context)
        let endpoint = "inproc://monitor-test-\(UInt64.random(in: 0...UInt64.max))"
        try client.monitorDisconnections(at: endpoint)
        let reader = try Socket(.pair, context: context)
        try reader.connect(endpoint)
        try client.send([Array("hello".utf8)], blocking: true)
        #expect(try server.receive(timeout: .seconds(5)) != nil, "the connection is up")

        // The server goes away: the monitor reports it.
        server.close()
        let event = try reader.receive(timeout: .seconds(5))
        #expect(event.map(Socket.isDisconnection) == true, "the disconnection is reported")

        // A new server on the same port, then stopped again after the monitor was stopped and its
        // reader closed: libzmq's I/O thread, which sends monitor events blocking, must not wait
        // on the reader that is gone.
        let second = try Socket(.router, context: context)
        // libzmq closes the first listener on its I/O thread: the port may take a moment to free.
        var bound = false
        for _ in 0..<50 where !bound {
            bound = (try? second.bind(address)) != nil
            if !bound { usleep(20_000) }
        }
        try #require(bound, "the port is free again")
        try client.send([Array("again".utf8)], blocking: true)
        #expect(try second.receive(timeout: .seconds(5)) != nil, "the client reconnected")
        client.stopMonitoring()
        reader.close()
        second.close()
        usleep(300_000)
        let free = try Self.messagesStillMove(on: context)
        #expect(free, "messages still move through the context's I/O thread")
        // A stalled I/O thread would hang the context's end (zmq_ctx_term): keep it then.
        if !free { _ = Unmanaged.passRetained(context) }
    }
}
