#if canImport(Glibc)
    import Glibc
#endif

/// Linux's `struct ucred` (which Glibc's module leaves out without _GNU_SOURCE).
private struct PeerCredentials {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}

/// The client end of a local link for a tool that asks and waits on its own thread (no event
/// loop): blocking writes, and reads that wait for a message up to a deadline. Same framing as
/// `LocalLink` (a 32-bit frame count, a 32-bit length per frame, little-endian, then the frames),
/// so a `LocalListener` serves it like any link.
///
/// Why: a request over ZeroMQ crosses libzmq's I/O threads on both ends, each woken from
/// `epoll_wait`; over a link the server's loop and this thread are the only ones woken, and
/// large frames are read straight into the arrays that hold them.
public final class BlockingLink {
    private let fd: Int32
    public private(set) var isClosed = false
    /// Bytes read ahead: `buffer[start..<end]` is not yet parsed.
    private var buffer = [UInt8](repeating: 0, count: 64 << 10)
    private var start = 0
    private var end = 0
    /// The receive timeout set on the socket (SO_RCVTIMEO), in tenths of a second: how long a
    /// message that has begun may pause before the link gives up on it.
    private var pauseLimit: Int64 = 0

    private init(fd: Int32) { self.fd = fd }

    deinit { close() }

    /// Connects to the listener serving `address` on this host (see `LocalListener`).
    /// - Returns: nil when no process on this host serves that address over a link.
    public static func connect(to address: String) -> BlockingLink? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let connected = LocalLink.withAbstractAddress(for: address) { pointer, length in
            Glibc.connect(fd, pointer, length) == 0
        }
        // Abstract names have no permissions: any local user could bind one first. Only a
        // server run by this user (or root) is trusted; anything else falls back to ZeroMQ.
        var credentials = PeerCredentials()
        var size = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard connected, getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0,
            credentials.uid == getuid() || credentials.uid == 0
        else {
            Glibc.close(fd)
            return nil
        }
        return BlockingLink(fd: fd)
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    /// Sends the frames as one message, waiting while the socket is full.
    /// - Throws: `ZMQError` when the message is too large for the framing or the peer is gone.
    public func send(_ frames: [[UInt8]]) throws {
        guard !isClosed else { throw ZMQError(errno: ECONNRESET, message: "sending on a closed local link") }
        var total = 4 + 4 * frames.count
        for frame in frames { total += frame.count }
        guard frames.count <= LocalLink.maximumFrames, total <= LocalLink.maximumMessageBytes,
            frames.allSatisfy({ $0.count <= Int(UInt32.max) })
        else {
            throw ZMQError(errno: EMSGSIZE, message: "a local link carries at most \(LocalLink.maximumFrames) frames of 4 GiB each")
        }
        var header: [UInt8] = []
        header.reserveCapacity(4 + 4 * frames.count)
        LocalLink.appendHeader(frames[...], to: &header)
        // Small frames travel in the header's write; large ones from their own storage.
        var large: [Int] = []
        for (index, frame) in frames.enumerated() {
            if frame.count < 16 << 10 && large.isEmpty { header.append(contentsOf: frame) } else { large.append(index) }
        }
        try header.withUnsafeBytes(write)
        for index in large { try frames[index].withUnsafeBytes(write) }
    }

    private func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else {
                let error = ZMQError(errno: errno, message: "sending on a local link")
                close()
                throw error
            }
            offset += sent
        }
    }

    /// Waits up to `timeout` for a message to begin; once it has, each read of the rest may
    /// wait up to `timeout` too (a peer that stops halfway fails the link instead of hanging it).
    /// - Returns: nil when none began in time.
    /// - Throws: `ZMQError` when the peer closed the link, paused mid-message past `timeout`, or
    ///   sent what the framing forbids.
    public func receive(timeout: Duration) throws -> Message? {
        guard !isClosed else { throw ZMQError(errno: ECONNRESET, message: "receiving on a closed local link") }
        // The socket's own receive timeout bounds the reads below: one system call when the
        // limit changes (in tenths of a second, rounded up), none per read.
        let (seconds, attoseconds) = timeout.components
        let tenths = max(1, min(seconds, 86_400) * 10 + (attoseconds + 99_999_999_999_999_999) / 100_000_000_000_000_000)
        if tenths != pauseLimit {
            var limit = timeval(tv_sec: Int(tenths / 10), tv_usec: Int(tenths % 10) * 100_000)
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw ZMQError(errno: errno, message: "setting a local link's receive timeout")
            }
            pauseLimit = tenths
        }
        if end == start {
            let deadline = ContinuousClock.now + timeout
            while true {
                var item = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let (seconds, attoseconds) = max(deadline - .now, .zero).components
                let milliseconds = Int32(clamping: min(seconds, 86_400_000) * 1000 + attoseconds / 1_000_000_000_000_000)
                let ready = poll(&item, 1, milliseconds)
                if ready > 0 { break }
                if ready == 0 { return nil }
                guard errno == EINTR else { throw ZMQError(errno: errno, message: "polling a local link") }
            }
        }
        let count = Int(try readWord())
        guard count <= LocalLink.maximumFrames else { throw corrupt("a message of \(count) frames") }
        var lengths: [Int] = []
        lengths.reserveCapacity(count)
        var total = 0
        for _ in 0..<count {
            let length = Int(try readWord())
            total += length
            lengths.append(length)
        }
        guard total <= LocalLink.maximumMessageBytes else { throw corrupt("a message of \(total) bytes") }
        var frames: [[UInt8]] = []
        frames.reserveCapacity(count)
        for length in lengths {
            var failure: ZMQError?
            let frame = [UInt8](unsafeUninitializedCapacity: length) { storage, initialized in
                do {
                    try read(into: UnsafeMutableRawBufferPointer(storage))
                    initialized = length
                } catch let error as ZMQError {
                    failure = error
                    initialized = 0
                } catch {
                    initialized = 0
                }
            }
            if let failure { throw failure }
            frames.append(frame)
        }
        return Message(frames)
    }

    private func corrupt(_ what: String) -> ZMQError {
        close()
        return ZMQError(errno: EPROTO, message: "a local link sent \(what): the stream is corrupt")
    }

    private func readWord() throws -> UInt32 {
        var word: UInt32 = 0
        try withUnsafeMutableBytes(of: &word) { try read(into: $0) }
        return UInt32(littleEndian: word)
    }

    /// Fills `destination` from what was read ahead, then from the socket (straight into it
    /// when a large part is left), waiting for the bytes.
    private func read(into destination: UnsafeMutableRawBufferPointer) throws {
        var filled = 0
        while filled < destination.count {
            if start < end {
                let take = min(end - start, destination.count - filled)
                buffer.withUnsafeBytes { source in
                    (destination.baseAddress! + filled).copyMemory(from: source.baseAddress! + start, byteCount: take)
                }
                start += take
                filled += take
                continue
            }
            let left = destination.count - filled
            let got: Int
            if left >= buffer.count {
                got = recv(fd, destination.baseAddress! + filled, left, 0)
                if got > 0 { filled += got }
            } else {
                got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
                if got > 0 {
                    start = 0
                    end = got
                }
            }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                let error =
                    if got == 0 {
                        ZMQError(errno: ECONNRESET, message: "the peer closed the local link")
                    } else if errno == EAGAIN || errno == EWOULDBLOCK {
                        ZMQError(
                            errno: ETIMEDOUT,
                            message: "the peer stopped mid-message on a local link for over \(Double(pauseLimit) / 10) s")
                    } else {
                        ZMQError(errno: errno, message: "receiving on a local link")
                    }
                // Halfway through a message the stream cannot be read on.
                close()
                throw error
            }
        }
    }
}
