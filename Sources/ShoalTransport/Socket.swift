import CZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// One libzmq socket. libzmq sockets are not thread-safe: a `Socket` is used by the thread of
/// the `EventLoop` that polls it (or by one thread alone), never by two at once.
///
/// `@unchecked Sendable`: the handle may be handed over once, from the thread that made it to
/// the loop thread that owns it from then on (libzmq allows such a hand-over with a memory
/// barrier, which the loop's queue lock provides); it is never used from two threads at once.
public final class Socket: @unchecked Sendable {
    /// The ZeroMQ socket types Shoal uses.
    public enum Kind: Sendable {
        case router, dealer, pair, pub, sub, push, pull

        var rawValue: Int32 {
            switch self {
            case .router: ZMQ_ROUTER
            case .dealer: ZMQ_DEALER
            case .pair: ZMQ_PAIR
            case .pub: ZMQ_PUB
            case .sub: ZMQ_SUB
            case .push: ZMQ_PUSH
            case .pull: ZMQ_PULL
            }
        }
    }

    let handle: UnsafeMutableRawPointer
    public let kind: Kind
    let context: ZMQContext
    private var isClosed = false
    /// Whether libzmq may hold input that nobody has looked for since the socket was last used:
    /// every send and every received message sets it, a receive that finds nothing clears it
    /// (and, by processing libzmq's pending commands, re-arms the signalling descriptor).
    /// Its signalling descriptor (`signalFD`) only tells of changes after such a check.
    var needsEventCheck = true
    /// The descriptor libzmq makes readable when the socket's state may have changed (ZMQ_FD).
    private(set) lazy var signalFD: Int32 = {
        var fd: Int32 = -1
        var size = MemoryLayout<Int32>.size
        return zmq_getsockopt(handle, ZMQ_FD, &fd, &size) == 0 ? fd : -1
    }()

    /// Opens a socket of `kind` with linger 0, so closing never blocks on unsent messages.
    /// - Throws: `ZMQError` when libzmq cannot open one (too many open files).
    public init(_ kind: Kind, context: ZMQContext = .shared) throws {
        guard let socket = zmq_socket(context.handle, kind.rawValue) else {
            throw ZMQError.last("opening a socket")
        }
        handle = socket
        self.kind = kind
        self.context = context
        try setOption(ZMQ_LINGER, Int32(0))
        // A peer announcing a larger message is disconnected at its frame header, before a
        // byte of it is buffered (a 2 GiB frame costs nothing).
        var limit = Self.maxMessageSize
        guard zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &limit, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("setting the maximum message size")
        }
        if kind == .router {
            // An unknown routing id is an error the caller sees instead of a silent drop.
            try setOption(ZMQ_ROUTER_MANDATORY, Int32(1))
        }
    }

    deinit { close() }

    /// The largest message any Shoal socket takes (1 GiB): the largest legitimate ones are a
    /// job's executable and its working directory (at most 1 GiB less 1 MiB, `cluster start
    /// --max-working-dir-size`); objects and artifacts travel in chunks.
    public static let maxMessageSize: Int64 = 1 << 30

    /// Closes the socket; later calls do nothing.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        zmq_close(handle)
    }

    /// Publishes this socket's disconnections (a peer's connection closing: the peer stopped or
    /// died) on `endpoint` (inproc), where a `.pair` socket connected to it gets one message each.
    /// - Throws: `ZMQError` when libzmq refuses.
    public func monitorDisconnections(at endpoint: String) throws {
        guard zmq_socket_monitor(handle, endpoint, ZMQ_EVENT_DISCONNECTED) == 0 else {
            throw ZMQError.last("monitoring a socket at \(endpoint)")
        }
    }

    /// Stops the monitor `monitorDisconnections` started. Call it before closing the socket that
    /// reads the monitor's endpoint: libzmq's I/O thread sends each event blocking, and with
    /// that reader gone the next event (the peer going away) would stall the I/O thread, and
    /// with it every ZeroMQ socket of the process.
    public func stopMonitoring() {
        guard !isClosed else { return }
        _ = zmq_socket_monitor(handle, nil, 0)
    }

    /// Whether a message from a monitor endpoint reports a disconnection (its first frame holds
    /// the event number, 16 bits in host order, then a 32-bit value).
    public static func isDisconnection(_ message: Message) -> Bool {
        guard let first = message.frames.first, first.count >= 6 else { return false }
        return UInt16(first[0]) | UInt16(first[1]) << 8 == UInt16(ZMQ_EVENT_DISCONNECTED)
    }

    /// Sets an integer option (`ZMQ_SNDHWM`, `ZMQ_LINGER` …).
    public func setOption(_ option: Int32, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("setting socket option \(option)")
        }
    }

    /// Sets a bytes option (`ZMQ_ROUTING_ID`, `ZMQ_SUBSCRIBE` …).
    public func setOption(_ option: Int32, _ value: [UInt8]) throws {
        let result = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard result == 0 else { throw ZMQError.last("setting socket option \(option)") }
    }

    /// Lifts the send and receive high-water marks: messages queue until memory runs out instead
    /// of being dropped or blocking. For control sockets whose peers are few and well-behaved.
    public func setUnboundedQueues() throws {
        try setOption(ZMQ_SNDHWM, Int32(0))
        try setOption(ZMQ_RCVHWM, Int32(0))
    }

    /// Sets this socket's routing id, as ROUTER peers will see it.
    public func setRoutingID(_ id: String) throws { try setOption(ZMQ_ROUTING_ID, Array(id.utf8)) }

    /// Binds to an endpoint (`tcp://127.0.0.1:0` binds an ephemeral port).
    /// - Returns: the endpoint actually bound, with the port chosen.
    @discardableResult
    public func bind(_ endpoint: String) throws -> String {
        // libzmq spells "any port" as `*`.
        let spelled = endpoint.hasSuffix(":0") ? String(endpoint.dropLast(2)) + ":*" : endpoint
        if ClusterSecurity.secures(endpoint), let keys = try ClusterSecurity.current() {
            // A CURVE server admitting only the cluster's clients (the context's ZAP handler checks).
            try ClusterSecurity.ensureHandler(context, keys: keys)
            try setOption(ZMQ_CURVE_SERVER, Int32(1))
            try setOption(ZMQ_CURVE_SECRETKEY, keys.serverSecret)
            try setOption(ZMQ_ZAP_DOMAIN, Array("shoal".utf8))
        }
        guard zmq_bind(handle, spelled) == 0 else { throw ZMQError.last("binding \(endpoint)") }
        return lastEndpoint ?? endpoint
    }

    /// Connects to an endpoint; libzmq reconnects by itself if the peer goes away.
    public func connect(_ endpoint: String) throws {
        if ClusterSecurity.secures(endpoint), let keys = try ClusterSecurity.current() {
            try setOption(ZMQ_CURVE_SERVERKEY, keys.serverPublic)
            try setOption(ZMQ_CURVE_PUBLICKEY, keys.clientPublic)
            try setOption(ZMQ_CURVE_SECRETKEY, keys.clientSecret)
        }
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("connecting to \(endpoint)") }
    }

    /// A DEALER with unbounded queues, connected to `endpoint`: how Shoal's processes reach
    /// each other's ROUTERs.
    public static func dealer(connectedTo endpoint: String, context: ZMQContext = .shared) throws -> Socket {
        let socket = try Socket(.dealer, context: context)
        try socket.setUnboundedQueues()
        try socket.connect(endpoint)
        return socket
    }

    /// The endpoint the socket last bound.
    public var lastEndpoint: String? {
        var buffer = [CChar](repeating: 0, count: 256)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return nil }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Sends the frames as one message.
    /// - Parameter blocking: when false, a full queue is an error (`wouldBlock`) instead of a wait.
    /// - Throws: `ZMQError`, e.g. EHOSTUNREACH on a ROUTER for an unknown peer.
    public func send(_ frames: [[UInt8]], blocking: Bool = false) throws {
        needsEventCheck = true
        let last = frames.count - 1
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < last ? ZMQ_SNDMORE : 0
            if !blocking { flags |= ZMQ_DONTWAIT }
            let result =
                frame.count >= Self.lentFrameSize
                ? sendLent(frame, flags: flags) : frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            guard result >= 0 else { throw ZMQError.last("sending frame \(index) of \(frames.count)") }
        }
    }

    /// Frames from this size on are lent to libzmq instead of copied into its own buffer: its
    /// I/O thread writes them to the wire straight from the array's storage and lets go of
    /// the array when done (a 2 MB copy saved per large frame).
    static let lentFrameSize = 64 << 10

    /// Holds a lent frame's array, and so its storage, until libzmq is done with it.
    private final class LentFrame: Sendable {
        let bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    /// Sends `frame` without copying it: libzmq keeps a reference to the array's storage and
    /// releases it from its I/O thread through `zmq_msg_init_data`'s free function. The
    /// pointer stays valid: the box holds the array, which nobody can mutate (it is a `let` of
    /// a native, contiguous array whose buffer moves only on a copy-on-write mutation).
    private func sendLent(_ frame: [UInt8], flags: Int32) -> Int32 {
        let box = LentFrame(frame)
        let hint = Unmanaged.passRetained(box).toOpaque()
        let pointer = box.bytes.withUnsafeBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
        var message = zmq_msg_t()
        guard
            zmq_msg_init_data(
                &message, pointer, box.bytes.count,
                { _, hint in
                    if let hint { Unmanaged<LentFrame>.fromOpaque(hint).release() }
                }, hint) == 0
        else {
            Unmanaged<LentFrame>.fromOpaque(hint).release()
            return -1
        }
        let sent = zmq_msg_send(&message, handle, flags)
        if sent < 0 {
            // Not queued: the message (and with it the box, through the free function) goes.
            let saved = errno
            zmq_msg_close(&message)
            errno = saved
        }
        return sent
    }

    /// Sends a message.
    public func send(_ message: Message, blocking: Bool = false) throws {
        try send(message.frames, blocking: blocking)
    }

    /// Receives one whole message without waiting.
    /// - Returns: nil when none is queued.
    public func receive() throws -> Message? {
        try receive(blocking: false)
    }

    /// Waits up to `timeout` for one whole message; for sockets used outside an `EventLoop`.
    /// - Returns: nil when none came in time.
    public func receive(timeout: Duration) throws -> Message? {
        var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
        let ready = zmq_poll(&item, 1, milliseconds)
        guard ready >= 0 else { throw ZMQError.last("polling") }
        guard ready > 0 else { return nil }
        return try receive(blocking: false)
    }

    /// Receives one whole message.
    /// - Parameter blocking: when true, waits for one (up to the socket's receive timeout).
    public func receive(blocking: Bool) throws -> Message? {
        needsEventCheck = true
        var frames: [[UInt8]] = []
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while true {
            let flags: Int32 = (blocking || !frames.isEmpty) ? 0 : ZMQ_DONTWAIT
            guard zmq_msg_recv(&message, handle, flags) >= 0 else {
                let error = ZMQError.last("receiving")
                if error.wouldBlock && frames.isEmpty {
                    needsEventCheck = false
                    return nil
                }
                throw error
            }
            let size = zmq_msg_size(&message)
            if let data = zmq_msg_data(&message), size > 0 {
                frames.append([UInt8](UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                frames.append([])
            }
            if zmq_msg_more(&message) == 0 { return Message(frames) }
        }
    }
}
