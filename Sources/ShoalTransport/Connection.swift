#if canImport(Glibc)
    import Glibc
#endif

/// Where multipart messages can be sent: a socket, a connection, a router endpoint.
public protocol MessageSink: AnyObject {
    /// Sends the frames as one message (on a ROUTER, the first frame names the peer).
    func send(frames: [[UInt8]]) throws
}

extension Socket: MessageSink {
    public func send(frames: [[UInt8]]) throws { try send(frames, blocking: false) }
}

/// A DEALER-style connection to the address a ROUTER bound: a `LocalLink` when that ROUTER's
/// owner runs on this host and serves links, else a ZeroMQ DEALER. Messages on one connection
/// keep their order either way; a connection never switches paths.
public final class Connection: MessageSink {
    private enum Path {
        case link(LocalLink)
        case socket(Socket)
    }

    private let path: Path
    private let loop: EventLoop

    /// Connects to `address` from `loop`, through a local link when `preferLocal` and one is served.
    /// - Throws: `ZMQError` when the ZeroMQ fallback cannot connect.
    public init(to address: String, on loop: EventLoop, preferLocal: Bool, handler: @escaping (Message) -> Void) throws {
        self.loop = loop
        if preferLocal, let link = LocalLink.connect(to: address, on: loop, handler: handler) {
            path = .link(link)
        } else {
            path = .socket(try loop.dealer(connectedTo: address, handler: handler))
        }
    }

    /// Whether messages go over a local link.
    public var isLocal: Bool {
        if case .link = path { return true }
        return false
    }

    /// Whether a local link's peer went away (a ZeroMQ connection never says).
    public var isClosed: Bool {
        if case .link(let link) = path { return link.isClosed }
        return false
    }

    public func send(frames: [[UInt8]]) throws {
        switch path {
        case .link(let link): try link.send(frames)
        case .socket(let socket): try socket.send(frames, blocking: false)
        }
    }

    /// Closes the connection (on the loop's thread).
    public func close() {
        switch path {
        case .link(let link): link.close()
        case .socket(let socket):
            loop.unregister(socket)
            socket.close()
        }
    }
}

/// A ROUTER socket and, optionally, a `LocalListener` for the same address: messages from both
/// reach one handler with the peer's id first, and replies go back the way the peer came.
///
/// `@unchecked Sendable` as `Socket` is: made on one thread, then used by its loop's thread alone.
public final class RouterEndpoint: MessageSink, @unchecked Sendable {
    private let socket: Socket
    private var listener: LocalListener?
    /// The address the ROUTER bound, which also names its local links.
    public let address: String

    /// Binds a ROUTER to `endpoint`, on any thread; `serve` starts it on its loop.
    /// - Throws: `ZMQError` when the ROUTER cannot bind.
    public init(binding endpoint: String) throws {
        socket = try Socket(.router)
        try socket.setUnboundedQueues()
        address = try socket.bind(endpoint)
    }

    /// Polls the ROUTER on `loop` and, when `serveLocal`, listens for local links too; `handler`
    /// gets every message from either, first frame the peer's id.
    /// - Parameter linkAddress: the address clients connect to, which names the links (default:
    ///   the one the ROUTER bound; a server bound to 0.0.0.0 is reached at its advertised one).
    /// - Throws: `ZMQError` when the link name is taken.
    public func serve(
        on loop: EventLoop, serveLocal: Bool, linkAddress: String? = nil, handler: @escaping (Message) -> Void
    ) throws {
        loop.register(socket, handler: handler)
        if serveLocal { listener = try LocalListener(serving: linkAddress ?? address, on: loop, handler: handler) }
    }

    public func send(frames: [[UInt8]]) throws {
        if let peer = frames.first, LocalListener.isLinkPeer(peer) {
            guard let listener else {
                throw ZMQError(errno: EHOSTUNREACH, message: "sending to a local link: this endpoint serves none")
            }
            try listener.send(frames)
        } else {
            try socket.send(frames, blocking: false)
        }
    }
}
