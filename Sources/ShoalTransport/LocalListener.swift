#if canImport(Glibc)
    import Glibc
#endif

/// Accepts `LocalLink`s from processes on this host for a ROUTER's address, and hands their
/// messages on as the ROUTER would: first frame the peer's id.
public final class LocalListener {
    private let loop: EventLoop
    private let fd: Int32
    private var watchID = 0
    private let handler: (Message) -> Void
    private var links: [[UInt8]: LocalLink] = [:]
    private var nextPeer: UInt64 = 1
    private var isClosed = false

    /// Peer ids of links start with this byte; libzmq's own routing ids start with 0.
    static let peerMarker: UInt8 = 0xFF

    /// Listens for links to `address` (the address a ROUTER bound), on `loop`.
    /// - Throws: `ZMQError` with the system's reason when the name cannot be taken.
    public init(serving address: String, on loop: EventLoop, handler: @escaping (Message) -> Void) throws {
        loop.checkIsolated()
        self.loop = loop
        self.handler = handler
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ZMQError.system("opening a local link listener") }
        let bound = LocalLink.withAbstractAddress(for: address) { pointer, length in
            bind(fd, pointer, length) == 0 && listen(fd, 128) == 0
        }
        guard bound, LocalLink.setNonBlocking(fd) else {
            let error = ZMQError.system("listening for local links to \(address)")
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        watchID = loop.watch(fd, events: LocalLink.readable, onStop: { self.close() }) { _ in self.accept() }
    }

    deinit {
        if !isClosed { Glibc.close(fd) }
    }

    /// Whether `peer` is the id of one of this listener's links.
    public static func isLinkPeer(_ peer: [UInt8]) -> Bool { peer.count == 9 && peer[0] == peerMarker }

    /// Sends a message whose first frame is a link peer's id to that peer.
    /// - Throws: `ZMQError` (EHOSTUNREACH) for a peer with no open link, as a ROUTER would.
    public func send(_ frames: [[UInt8]]) throws {
        guard let peer = frames.first, let link = links[peer] else {
            throw ZMQError(errno: EHOSTUNREACH, message: "sending to a local link: no such peer")
        }
        try link.send(frames.dropFirst())
    }

    /// Stops listening and closes every link.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        loop.unwatch(watchID)
        Glibc.close(fd)
        let open = links.values
        links.removeAll()
        for link in open { link.close() }
    }

    private func accept() {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            guard client >= 0 else { return }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            guard LocalLink.setNonBlocking(client) else {
                Glibc.close(client)
                continue
            }
            var peer: [UInt8] = [Self.peerMarker]
            withUnsafeBytes(of: nextPeer.littleEndian) { peer.append(contentsOf: $0) }
            nextPeer += 1
            let link = LocalLink(fd: client, loop: loop, prefix: peer, handler: handler)
            link.onClose = { [unowned self] in self.links[peer] = nil }
            links[peer] = link
        }
    }
}
