import CShoalKernels
import CZeroMQ
import Foundation
import Synchronization

/// All-reduce over a ring of ZeroMQ sockets, for ranks on different machines: each rank pulls
/// from its left neighbour and pushes to its right. A reduce-scatter (N − 1 steps, each adding
/// the chunk that arrives into this rank's buffer) leaves each rank one fully summed chunk; an
/// all-gather (N − 1 steps) passes the summed chunks round. Every element is summed once, by one
/// rank, so every rank ends with the same bits.
public final class RingCollective: Collective, @unchecked Sendable {
    // @unchecked: the sockets are used by one thread at a time (the rank's training thread,
    // after `connect`); `abort` only sets an atomic flag that the receive loop polls.
    public let rank: Int
    public let size: Int
    public let count: Int
    /// Where the left neighbour pushes to this rank.
    public let endpoint: String
    private let context: UnsafeMutableRawPointer
    private let pull: UnsafeMutableRawPointer
    private var push: UnsafeMutableRawPointer?
    private let aborted = Atomic<Bool>(false)
    private let deadline: Duration
    private var sequence: UInt32 = 0
    private var received: [Float]
    private let closed = Mutex(false)

    /// Binds this rank's receiving socket on `host` (an ephemeral port).
    /// - Throws: `CollectiveError` when the socket cannot be bound.
    public init(rank: Int, size: Int, count: Int, host: String, deadline: Duration = .seconds(600)) throws {
        guard size >= 1, (0..<size).contains(rank), count >= 0 else {
            throw CollectiveError("rank \(rank) of \(size) is not a valid place in a group")
        }
        self.rank = rank
        self.size = size
        self.count = count
        self.deadline = deadline
        received = [Float](repeating: 0, count: count / max(1, size) + 32)
        guard let context = zmq_ctx_new() else { throw CollectiveError("cannot make a ZeroMQ context") }
        self.context = context
        guard let pull = zmq_socket(context, ZMQ_PULL) else {
            zmq_ctx_term(context)
            throw CollectiveError("cannot make a ZeroMQ socket: \(String(cString: zmq_strerror(zmq_errno())))")
        }
        self.pull = pull
        var timeout: Int32 = 100
        zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout, 4)
        var linger: Int32 = 0
        zmq_setsockopt(pull, ZMQ_LINGER, &linger, 4)
        guard zmq_bind(pull, "tcp://\(host):*") == 0 else {
            let reason = String(cString: zmq_strerror(zmq_errno()))
            zmq_close(pull)
            zmq_ctx_term(context)
            throw CollectiveError("cannot bind the ring socket on \(host): \(reason)")
        }
        var name = [CChar](repeating: 0, count: 256)
        var length = name.count
        zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, &name, &length)
        endpoint = String(cString: name)
    }

    deinit { close() }

    /// Connects to the right neighbour, `peers[(rank + 1) % size]`.
    public func connect(peers: [CollectiveEndpoint]) throws {
        guard size > 1 else { return }
        guard peers.count == size, let right = peers.first(where: { $0.rank == (rank + 1) % size }) else {
            throw CollectiveError("rank \(rank) got \(peers.count) endpoints for a group of \(size)")
        }
        guard let push = zmq_socket(context, ZMQ_PUSH) else { throw CollectiveError("cannot make a ZeroMQ socket") }
        // A rank that closes right after its last call still delivers its last chunk (for up to 2 s).
        var linger: Int32 = 2000
        zmq_setsockopt(push, ZMQ_LINGER, &linger, 4)
        guard zmq_connect(push, right.address) == 0 else {
            zmq_close(push)
            throw CollectiveError("cannot connect to rank \(right.rank) at \(right.address)")
        }
        self.push = push
    }

    public func allReduceMean(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard buffer.count == count, let data = buffer.baseAddress else {
            throw CollectiveError("a buffer of \(buffer.count) floats for a group of \(count)")
        }
        guard size > 1 else { return }
        guard let push else { throw CollectiveError("rank \(rank) is not connected to its ring") }
        sequence &+= 1
        func send(_ chunk: Int) throws {
            let range = chunkRange(chunk, of: size, count: count)
            var header: (UInt32, UInt32) = (sequence, UInt32(chunk))
            guard withUnsafeBytes(of: &header, { zmq_send(push, $0.baseAddress, 8, ZMQ_SNDMORE) }) == 8,
                zmq_send(push, data + range.lowerBound, range.count * 4, 0) >= 0
            else { throw CollectiveError("rank \(rank) could not send: \(String(cString: zmq_strerror(zmq_errno())))") }
        }
        /// Receives chunk `chunk` from the left and adds it into the buffer (or copies it).
        func receive(_ chunk: Int, adding: Bool) throws {
            let range = chunkRange(chunk, of: size, count: count)
            var header = zmq_msg_t()
            var payload = zmq_msg_t()
            zmq_msg_init(&header)
            zmq_msg_init(&payload)
            defer {
                zmq_msg_close(&header)
                zmq_msg_close(&payload)
            }
            let started = ContinuousClock.now
            while zmq_msg_recv(&header, pull, 0) < 0 {
                guard zmq_errno() == EAGAIN || zmq_errno() == EINTR else {
                    throw CollectiveError("rank \(rank) could not receive: \(String(cString: zmq_strerror(zmq_errno())))")
                }
                if aborted.load(ordering: .relaxed) { throw CollectiveError("rank \(rank)'s ring was aborted") }
                if ContinuousClock.now - started > deadline {
                    throw CollectiveError("rank \(rank) waited past \(deadline) for rank \((rank + size - 1) % size)")
                }
            }
            guard zmq_msg_size(&header) == 8, zmq_msg_more(&header) == 1, zmq_msg_recv(&payload, pull, 0) >= 0 else {
                throw CollectiveError("rank \(rank) received a malformed ring message")
            }
            var got: (UInt32, UInt32) = (0, 0)
            withUnsafeMutableBytes(of: &got) { $0.copyMemory(from: UnsafeRawBufferPointer(start: zmq_msg_data(&header), count: 8)) }
            guard got.0 == sequence, got.1 == UInt32(chunk), zmq_msg_size(&payload) == range.count * 4 else {
                throw CollectiveError(
                    "rank \(rank) expected chunk \(chunk) of call \(sequence), got chunk \(got.1) of call \(got.0) "
                        + "(\(zmq_msg_size(&payload)) bytes)")
            }
            guard let source = zmq_msg_data(&payload)?.assumingMemoryBound(to: Float.self) else { return }
            let target = data + range.lowerBound
            if adding {
                for index in 0..<range.count { target[index] += source[index] }
            } else {
                target.update(from: source, count: range.count)
            }
        }
        // Reduce-scatter: after it, this rank holds the sum of chunk (rank + 1) mod N.
        for step in 0..<(size - 1) {
            try send((rank - step + size) % size)
            try receive((rank - step - 1 + 2 * size) % size, adding: true)
        }
        // All-gather: pass the summed chunks round.
        for step in 0..<(size - 1) {
            try send((rank + 1 - step + size) % size)
            try receive((rank - step + size) % size, adding: false)
        }
        let scale = 1 / Float(size)
        for index in 0..<count { data[index] *= scale }
    }

    public func abort() { aborted.store(true, ordering: .relaxed) }

    public func close() {
        let first = closed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        if let push { zmq_close(push) }
        zmq_close(pull)
        zmq_ctx_term(context)
    }
}
