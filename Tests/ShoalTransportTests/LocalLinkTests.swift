import Foundation
import ShoalTransport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `body` on `loop`'s thread and returns what it returns.
func onLoop<T: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        loop.execute { continuation.resume(with: Result { try body() }) }
    }
}

/// Waits until `condition` holds, for up to `timeout`.
func waitUntil(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
}

/// A ROUTER endpoint on its own loop that echoes every message back to its sender.
/// `@unchecked Sendable`: its endpoint is touched on its loop's thread only.
final class EchoRouter: @unchecked Sendable {
    let loop = EventLoop(name: "test-link-echo")
    let endpoint: RouterEndpoint
    let peers = Mutex<Set<[UInt8]>>([])

    init(serveLocal: Bool) async throws {
        let endpoint = try RouterEndpoint(binding: "tcp://127.0.0.1:0")
        self.endpoint = endpoint
        try await onLoop(loop) { [self] in
            try endpoint.serve(on: loop, serveLocal: serveLocal) { [unowned self] message in
                self.peers.withLock { _ = $0.insert(message.frames[0]) }
                try? self.endpoint.send(frames: message.frames)
            }
        }
    }

    func stop() { loop.shutdown() }
}

/// A client on its own loop with one connection, recording what comes back.
final class LinkClient: @unchecked Sendable {
    let loop = EventLoop(name: "test-link-client", spin: .microseconds(50))
    let received = Mutex<[[[UInt8]]]>([])
    private var connection: Connection?

    init(to address: String, preferLocal: Bool) async throws {
        try await onLoop(loop) { [self] in
            connection = try Connection(to: address, on: loop, preferLocal: preferLocal) { [unowned self] message in
                self.received.withLock { $0.append(message.frames) }
            }
        }
    }

    var isLocal: Bool { get async throws { try await onLoop(loop) { [self] in connection?.isLocal ?? false } } }
    var isClosed: Bool { get async throws { try await onLoop(loop) { [self] in connection?.isClosed ?? false } } }

    func send(_ frames: [[UInt8]]) async throws {
        try await onLoop(loop) { [self] in try connection?.send(frames: frames) }
    }

    var count: Int { received.withLock { $0.count } }

    func stop() { loop.shutdown() }
}

@Suite struct LocalLinkTests {
    @Test func linkCarriesMessagesInOrderBothWays() async throws {
        let server = try await EchoRouter(serveLocal: true)
        let client = try await LinkClient(to: server.endpoint.address, preferLocal: true)
        #expect(try await client.isLocal)
        var sent: [[[UInt8]]] = []
        for index in 0..<1_000 {
            let frames: [[UInt8]] = [[UInt8(index & 0xFF), UInt8(index >> 8)], [], Array("frame \(index)".utf8)]
            sent.append(frames)
            try await client.send(frames)
        }
        try await waitUntil { client.count == 1_000 }
        #expect(client.received.withLock { $0 } == sent)
        // The echo saw one peer, named as a link's (not a ZeroMQ routing id).
        let peers = server.peers.withLock { $0 }
        #expect(peers.count == 1)
        #expect(peers.first?.first == 0xFF)
        client.stop()
        server.stop()
    }

    @Test func largeMessagesArriveWhole() async throws {
        let server = try await EchoRouter(serveLocal: true)
        let client = try await LinkClient(to: server.endpoint.address, preferLocal: true)
        // Far larger than the socket's buffer: written in pieces as the peer drains it.
        var big = [UInt8](repeating: 0, count: 8 << 20)
        for index in stride(from: 0, to: big.count, by: 4093) { big[index] = UInt8(truncatingIfNeeded: index / 4093) }
        try await client.send([Array("head".utf8), big])
        try await client.send([Array("after".utf8)])
        try await waitUntil(.seconds(60)) { client.count == 2 }
        let received = client.received.withLock { $0 }
        #expect(received.count == 2)
        // Compared as one Bool: a failure would otherwise print megabytes.
        let whole = received.first == [Array("head".utf8), big]
        #expect(whole)
        #expect(received.last == [Array("after".utf8)])
        client.stop()
        server.stop()
    }

    @Test func aMessageTheFramingCannotCarryIsRefusedAndTheLinkGoesOn() async throws {
        let server = try await EchoRouter(serveLocal: true)
        let client = try await LinkClient(to: server.endpoint.address, preferLocal: true)
        let tooMany = [[UInt8]](repeating: [], count: 70_000)
        await #expect(throws: ZMQError.self) { try await client.send(tooMany) }
        try await client.send([Array("fine".utf8)])
        try await waitUntil { client.count == 1 }
        #expect(client.received.withLock { $0 } == [[Array("fine".utf8)]])
        client.stop()
        server.stop()
    }

    @Test func withoutAListenerTheConnectionUsesZeroMQ() async throws {
        let server = try await EchoRouter(serveLocal: false)
        let client = try await LinkClient(to: server.endpoint.address, preferLocal: true)
        #expect(try await !client.isLocal)
        try await client.send([Array("over zeromq".utf8)])
        try await waitUntil { client.count == 1 }
        #expect(client.received.withLock { $0 } == [[Array("over zeromq".utf8)]])
        #expect(server.peers.withLock { $0.first?.first } == 0)
        client.stop()
        server.stop()
    }

    @Test func aPeerThatGoesAwayClosesTheLinkAndLaterSendsAreDropped() async throws {
        let server = try await EchoRouter(serveLocal: true)
        let client = try await LinkClient(to: server.endpoint.address, preferLocal: true)
        try await client.send([[1]])
        try await waitUntil { client.count == 1 }
        #expect(try await !client.isClosed)
        server.stop()
        // The echo's loop closed its listener and links: the client sees the end of the stream,
        // and sending now neither throws nor hangs.
        let deadline = ContinuousClock.now + .seconds(10)
        while try await !client.isClosed && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        #expect(try await client.isClosed)
        for _ in 0..<100 { try await client.send([[2]]) }
        #expect(client.count == 1)
        client.stop()
    }

    @Test func aCorruptStreamIsCutOffAndOthersGoOn() async throws {
        let server = try await EchoRouter(serveLocal: true)
        // A raw connection that claims more frames than a message may have.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let name = Array("shoal-link \(server.endpoint.address)".utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in name.enumerated() { path[index + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.count)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        #expect(connected == 0)
        var garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0x7F, 1, 2, 3, 4]
        _ = Glibc.send(fd, &garbage, garbage.count, Int32(MSG_NOSIGNAL))
        // The server hangs up: read sees the end of the stream.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        #expect(recv(fd, &byte, 1, 0) == 0)
        Glibc.close(fd)
        // A well-behaved client is still served.
        let client = try await LinkClient(to: server.endpoint.address, preferLocal: true)
        try await client.send([[7]])
        try await waitUntil { client.count == 1 }
        #expect(client.received.withLock { $0 } == [[[7]]])
        client.stop()
        server.stop()
    }
}
