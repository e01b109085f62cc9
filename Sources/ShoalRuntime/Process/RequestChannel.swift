#if canImport(Glibc)
    import Glibc
#endif
import ShoalTransport
import ShoalWire

/// A DEALER to one server (a head, a registry) for tools that ask and wait: each request gets
/// a fresh id, and an answer to an earlier request that timed out is skipped. One user at a time.
final class RequestChannel {
    /// `tcp://host:port`.
    let address: String
    /// Names the server in messages ("head", "registry").
    let peer: String
    /// Whether a server's error message is prefixed with where it came from.
    private let namesServerInErrors: Bool
    /// A local link when the server runs on this host and serves one, else a ZeroMQ DEALER.
    private enum Path {
        case link(BlockingLink)
        case socket(Socket)
    }

    private var path: Path
    private var nextRequestID: UInt64 = 1

    /// - Parameter preferLocal: take a local link to the server when it serves one on this host
    ///   (and `SHOAL_LOCAL_LINKS` is not 0).
    init(address: String, peer: String, namesServerInErrors: Bool = false, preferLocal: Bool = false) throws {
        self.address = address.hasPrefix("tcp://") ? address : "tcp://" + address
        self.peer = peer
        self.namesServerInErrors = namesServerInErrors
        if preferLocal, LocalLinkSetting.enabled, let link = BlockingLink.connect(to: self.address) {
            path = .link(link)
        } else {
            path = .socket(try Socket.dealer(connectedTo: self.address))
        }
    }

    deinit {
        switch path {
        case .link(let link): link.close()
        case .socket(let socket): socket.close()
        }
    }

    /// Whether requests go over a local link.
    var isLocal: Bool {
        if case .link = path { return true }
        return false
    }

    private func send(_ envelope: Envelope, payloads: [[UInt8]]) throws {
        // A link closed since (the server restarted, a request timed out halfway): a new one
        // when the server serves links again, else ZeroMQ, which reconnects by itself.
        if case .link(let link) = path, link.isClosed {
            path =
                if let fresh = BlockingLink.connect(to: address) { .link(fresh) } else {
                    .socket(try Socket.dealer(connectedTo: address))
                }
        }
        switch path {
        case .link(let link):
            do {
                try link.send([envelope.frame()] + payloads)
            } catch let error as ZMQError where error.errno == EMSGSIZE {
                throw ClusterError.peerError("the request is too large for a local link: \(error)")
            } catch let error as ZMQError {
                throw ClusterError.connectionFailed("the \(peer) at \(address) closed its local link: \(error)")
            }
        case .socket(let socket): try socket.send(envelope, payloads: payloads)
        }
    }

    private func receive(timeout: Duration) throws -> ShoalTransport.Message? {
        switch path {
        case .link(let link):
            do {
                return try link.receive(timeout: timeout)
            } catch let error as ZMQError {
                throw ClusterError.connectionFailed("the \(peer) at \(address) closed its local link: \(error)")
            }
        case .socket(let socket): return try socket.receive(timeout: timeout)
        }
    }

    /// Sends `body` with `payloads` and waits up to `timeout` for its answer.
    /// - Throws: `ClusterError.connectionFailed` when none comes, `ClusterError.peerError` with
    ///   the server's message when it answers with an error.
    /// - Parameter partial: takes each message the server sends for this request ahead of its
    ///   answer (pieces of a download); `timeout` then runs from the latest one.
    func request(
        _ body: Envelope.OneOf_Body, payloads: [[UInt8]] = [], timeout: Duration,
        partial: ((Incoming) throws -> Void)? = nil
    ) throws -> Incoming {
        let requestID = nextRequestID
        nextRequestID += 1
        try send(Envelope(requestID, body), payloads: payloads)
        var deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - .now
            guard left > .zero, let message = try receive(timeout: left) else {
                throw ClusterError.connectionFailed("no \(peer) answered at \(address) within \(timeout)")
            }
            let incoming = try Incoming(message, routed: false)
            guard incoming.envelope.requestID == requestID else { continue }
            if case .error(let error) = incoming.envelope.body {
                throw ClusterError.peerError(namesServerInErrors ? "the \(peer) at \(address): \(error.message)" : error.message)
            }
            if let partial, case .artifactChunk = incoming.envelope.body {
                try partial(incoming)
                deadline = .now + timeout
                continue
            }
            return incoming
        }
    }

    /// Sends a one-way message (request id 0: the server answers none).
    func send(_ body: Envelope.OneOf_Body, payloads: [[UInt8]] = []) throws {
        try send(Envelope(0, body), payloads: payloads)
    }
}
