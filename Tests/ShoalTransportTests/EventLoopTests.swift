import Foundation
import ShoalTransport
import Synchronization
import Testing

/// An actor whose executor is an event loop, owning a socket there.
actor EchoServer {
    nonisolated let loop = EventLoop(name: "test-echo")
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
    private var socket: Socket?
    private(set) var received = 0

    func start(endpoint: String) throws -> String {
        let socket = try Socket(.router)
        let bound = try socket.bind(endpoint)
        self.socket = socket
        loop.register(socket) { [unowned self] message in
            self.assumeIsolated { server in
                server.received += 1
                try? server.socket?.send(message)
            }
        }
        return bound
    }
}

/// Work seen by a loop, by the thread that sent it.
final class Recorder: Sendable {
    let seen = Mutex<[Int: [Int]]>([:])
}

@Suite struct EventLoopTests {
    @Test func actorOnALoopEchoesOverTCP() async throws {
        let server = EchoServer()
        let endpoint = try await server.start(endpoint: "tcp://127.0.0.1:0")
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let client = try Socket(.dealer)
        try client.connect(endpoint)
        for index in 0..<100 {
            try client.send([[UInt8(index)], Array("frame".utf8)], blocking: true)
            let reply = try #require(try client.receive(timeout: .seconds(5)))
            #expect(reply.frames == [[UInt8(index)], Array("frame".utf8)])
        }
        #expect(await server.received == 100)
        server.loop.shutdown()
    }

    @Test func inprocSocketsWorkInsideOneProcess() async throws {
        let server = EchoServer()
        let endpoint = try await server.start(endpoint: "inproc://echo-test")
        let client = try Socket(.dealer)
        try client.connect(endpoint)
        try client.send([Array("ping".utf8)], blocking: true)
        let reply = try #require(try client.receive(timeout: .seconds(5)))
        #expect(reply.frames == [Array("ping".utf8)])
        server.loop.shutdown()
    }

    /// Frames from 64 KiB on are lent to libzmq rather than copied: they must arrive intact
    /// while the sender changes its arrays and several are in flight at once.
    @Test(arguments: ["tcp://127.0.0.1:0", "inproc://echo-large-frames"])
    func largeFramesArriveIntactWhileTheSenderChangesItsArrays(_ endpoint: String) async throws {
        let server = EchoServer()
        let bound = try await server.start(endpoint: endpoint)
        let client = try Socket(.dealer)
        try client.connect(bound)
        func contents(_ index: Int) -> [UInt8] {
            (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
        }
        // One array changed in place between sends: were its storage not held for libzmq until
        // sent, the bytes in flight would change under it.
        var large = contents(0)
        for index in 0..<8 {
            if index > 0 { large.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = $0[i] &+ 1 } } }
            try client.send([Array("m\(index)".utf8), large, [UInt8](repeating: UInt8(index), count: 64 << 10)], blocking: true)
        }
        for index in 0..<8 {
            let reply = try #require(try client.receive(timeout: .seconds(5)))
            #expect(reply.frames.count == 3 && reply.frames[0] == Array("m\(index)".utf8))
            let intact = reply.frames.count == 3 && reply.frames[1] == contents(index)
            let exact = reply.frames.count == 3 && reply.frames[2] == [UInt8](repeating: UInt8(index), count: 64 << 10)
            #expect(intact && exact, "the large frames of message \(index) changed in flight")
        }
        server.loop.shutdown()
    }

    @Test func timersFireAndCancel() async throws {
        let loop = EventLoop(name: "test-timers")
        let fired = Mutex<[String]>([])
        let done = Mutex(false)
        let ticks = Mutex(0)
        let repeatingID = Mutex(0)
        loop.execute {
            loop.schedule(after: .milliseconds(10)) { fired.withLock { $0.append("once") } }
            let cancelled = loop.schedule(after: .milliseconds(30)) { fired.withLock { $0.append("cancelled") } }
            loop.cancelTimer(cancelled)
            let id = loop.schedule(after: .milliseconds(5), repeating: .milliseconds(5)) {
                fired.withLock { $0.append("tick") }
                let count = ticks.withLock { count -> Int in
                    count += 1
                    return count
                }
                if count == 3 {
                    loop.cancelTimer(repeatingID.withLock { $0 })
                    done.withLock { $0 = true }
                }
            }
            repeatingID.withLock { $0 = id }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while !done.withLock({ $0 }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(50))
        let events = fired.withLock { $0 }
        #expect(events.filter { $0 == "tick" }.count == 3)
        #expect(events.contains("once"))
        #expect(!events.contains("cancelled"))
        loop.shutdown()
    }

    @Test func aShutdownOnTheLoopsOwnThreadRunsNoHandlerAfterIt() async throws {
        // An owner's deinit may stop its loop from one of the loop's own timers or handlers: the
        // others, which may hold that owner unowned, must not run after it.
        let loop = EventLoop(name: "test-stop-inside")
        let ran = Mutex<[String]>([])
        loop.execute {
            loop.schedule(after: .milliseconds(10)) {
                ran.withLock { $0.append("stopper") }
                loop.shutdown()
            }
            loop.schedule(after: .milliseconds(10)) { ran.withLock { $0.append("after") } }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while ran.withLock({ $0.isEmpty }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(ran.withLock { $0 } == ["stopper"])
    }

    @Test func workFromManyThreadsRunsInOrderPerThread() async throws {
        let loop = EventLoop(name: "test-order")
        let recorder = Recorder()
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<4 {
                group.addTask {
                    for index in 0..<500 {
                        loop.execute { recorder.seen.withLock { $0[thread, default: []].append(index) } }
                    }
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while recorder.seen.withLock({ $0.values.map(\.count).reduce(0, +) }) < 2000 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        for thread in 0..<4 {
            #expect(recorder.seen.withLock { $0[thread] } == Array(0..<500))
        }
        loop.shutdown()
    }

    @Test func connectingToABadEndpointIsAnError() throws {
        let socket = try Socket(.dealer)
        #expect(throws: ZMQError.self) { try socket.connect("nonsense://nowhere") }
        #expect(throws: ZMQError.self) { try socket.bind("tcp://256.1.1.1:1") }
    }
}

@Suite struct IPCTests {
    @Test func ipcSocketsCarryMessagesBetweenLoops() async throws {
        let server = EchoServer()
        let path = NSTemporaryDirectory() + "shoal-ipc-\(UInt32.random(in: 0...UInt32.max))"
        let endpoint = try await server.start(endpoint: "ipc://" + path)
        let client = try Socket(.dealer)
        try client.connect(endpoint)
        try client.send([Array("over ipc".utf8)], blocking: true)
        let reply = try #require(try client.receive(timeout: .seconds(5)))
        #expect(reply.frames == [Array("over ipc".utf8)])
        server.loop.shutdown()
        try? FileManager.default.removeItem(atPath: path)
    }
}
