#if canImport(Glibc)
    import Glibc
#endif

/// A connection to a process on the same host over a Unix-domain stream socket, carrying the
/// same multipart messages as a ZeroMQ DEALER/ROUTER pair.
///
/// Why: a ZeroMQ message crosses libzmq's I/O threads on both ends, and each of those sleeps in
/// `epoll_wait` between messages; on a VM, waking a thread on an idle vCPU costs tens of
/// microseconds. A link is written and read by the loop threads themselves, which spin for a
/// while after each message (`EventLoop(spin:)`), so a round trip between two spinning loops
/// takes microseconds instead of a hundred.
///
/// Framing: a 32-bit frame count, a 32-bit length per frame (little-endian), then the frames'
/// bytes. A link is used on its loop's thread only. A peer that goes away (end of stream, a reset)
/// closes the link; messages sent on a closed link are dropped, as ZeroMQ drops those queued for
/// a peer that never comes back.
public final class LocalLink {
    /// Frames a message may have, and bytes it may hold, before the stream counts as corrupt.
    static let maximumFrames = 1 << 16
    static let maximumMessageBytes = 1 << 34

    private let loop: EventLoop
    private let fd: Int32
    /// Put before the frames of every message received (a listener's peer id), or nil.
    private let prefix: [UInt8]?
    private let handler: (Message) -> Void
    private var watchID = 0
    public private(set) var isClosed = false
    /// Called once when the link closes, by either side.
    var onClose: (() -> Void)?

    /// Received bytes: `input[readStart..<readEnd]` is not yet parsed.
    private var input: [UInt8]
    private var readStart = 0
    private var readEnd = 0
    /// Bytes the socket did not take yet, in order; sent when it is writable again.
    private var pending: [UInt8] = []
    private var pendingStart = 0
    /// A reused buffer for small outgoing messages, so a send makes one syscall and no allocation.
    private var scratch: [UInt8] = []

    /// Events for `EventLoop.watch`.
    static let readable = Int16(POLLIN)
    static let readableOrWritable = Int16(POLLIN | POLLOUT)

    /// Messages up to this size are copied into one buffer and written with one call.
    private static let coalesceLimit = 64 << 10
    private static let readChunk = 64 << 10

    init(fd: Int32, loop: EventLoop, prefix: [UInt8]?, handler: @escaping (Message) -> Void) {
        self.fd = fd
        self.loop = loop
        self.prefix = prefix
        self.handler = handler
        input = [UInt8](repeating: 0, count: Self.readChunk * 2)
        // The loop holds the link while it watches it: until `close()` or the loop's end.
        watchID = loop.watch(fd, events: Self.readable, onStop: { self.close() }) { revents in self.ready(revents) }
    }

    deinit {
        if !isClosed { Glibc.close(fd) }
    }

    /// Connects to the listener serving `address` on this host (see `LocalListener`).
    /// - Returns: nil when no process on this host serves that address over a link.
    public static func connect(
        to address: String, on loop: EventLoop, handler: @escaping (Message) -> Void
    ) -> LocalLink? {
        loop.checkIsolated()
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        let connected = withAbstractAddress(for: address) { pointer, length in
            Glibc.connect(fd, pointer, length) == 0
        }
        guard connected, setNonBlocking(fd) else {
            Glibc.close(fd)
            return nil
        }
        return LocalLink(fd: fd, loop: loop, prefix: nil, handler: handler)
    }

    /// Sends the frames as one message; a closed link drops it.
    /// - Throws: `ZMQError` (EMSGSIZE) for a message the framing cannot carry.
    public func send(_ frames: [[UInt8]]) throws {
        try send(frames[...])
    }

    /// Sends the frames as one message; a closed link drops it. Small messages go out in one
    /// write from a reused buffer; large frames are written from their own storage, and only
    /// what the socket does not take at once is copied, to be sent when it drains.
    func send(_ frames: ArraySlice<[UInt8]>) throws {
        guard !isClosed else { return }
        var total = 4 + 4 * frames.count
        for frame in frames { total += frame.count }
        guard frames.count <= Self.maximumFrames, total <= Self.maximumMessageBytes,
            frames.allSatisfy({ $0.count <= Int(UInt32.max) })
        else {
            throw ZMQError(
                errno: EMSGSIZE,
                message: "a local link carries at most \(Self.maximumFrames) frames of 4 GiB each, \(Self.maximumMessageBytes >> 30) GiB in all")
        }
        scratch.removeAll(keepingCapacity: true)
        Self.appendHeader(frames, to: &scratch)
        if total <= Self.coalesceLimit {
            for frame in frames { scratch.append(contentsOf: frame) }
            scratch.withUnsafeBytes { write($0) }
        } else {
            scratch.withUnsafeBytes { write($0) }
            for frame in frames { frame.withUnsafeBytes { write($0) } }
        }
        if pendingStart < pending.count && !isClosed { loop.setEvents(Self.readableOrWritable, for: watchID) }
    }

    /// Closes the link; later sends are dropped.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        loop.unwatch(watchID)
        Glibc.close(fd)
        input = []
        pending = []
        let onClose = self.onClose
        self.onClose = nil
        onClose?()
    }

    // MARK: loop thread

    private func ready(_ revents: Int16) {
        if revents & Int16(POLLOUT) != 0 { flush() }
        // A hang-up or an error shows as end of stream or a failed read.
        if revents & ~Int16(POLLOUT) != 0 { receive() }
    }

    /// The framing's header: the frame count, then each frame's length.
    static func appendHeader(_ frames: ArraySlice<[UInt8]>, to bytes: inout [UInt8]) {
        func put(_ value: Int) {
            let value = UInt32(value)
            bytes.append(UInt8(truncatingIfNeeded: value))
            bytes.append(UInt8(truncatingIfNeeded: value >> 8))
            bytes.append(UInt8(truncatingIfNeeded: value >> 16))
            bytes.append(UInt8(truncatingIfNeeded: value >> 24))
        }
        put(frames.count)
        for frame in frames { put(frame.count) }
    }

    /// Writes as much of `bytes` as the socket takes now. - Returns: how many it took, or nil
    /// when the stream failed (EPIPE, ECONNRESET: the peer is gone) and the link is closed.
    private func sendSome(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.send(
                fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if written > 0 {
                offset += written
            } else if written < 0 && errno == EINTR {
                continue
            } else if written < 0 && errno == EAGAIN {
                break
            } else {
                close()
                return nil
            }
        }
        return offset
    }

    /// Writes `bytes` now if nothing is queued before them, and queues what the socket did not take.
    private func write(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosed, bytes.count > 0 else { return }
        var offset = 0
        if pendingStart == pending.count {
            guard let written = sendSome(bytes) else { return }
            if written == bytes.count { return }
            offset = written
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
        }
        if pendingStart > 0 && pendingStart * 2 > pending.count {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset...]).assumingMemoryBound(to: UInt8.self))
    }

    /// Writes queued bytes until the socket is full; polls for writability while some remain.
    private func flush() {
        guard !isClosed else { return }
        if pendingStart < pending.count {
            guard let written = pending.withUnsafeBytes({ sendSome(UnsafeRawBufferPointer(rebasing: $0[pendingStart...])) })
            else { return }
            pendingStart += written
            if pendingStart < pending.count { return }
        }
        pending.removeAll(keepingCapacity: pending.count <= 1 << 20)
        pendingStart = 0
        loop.setEvents(Self.readable, for: watchID)
    }

    /// Reads what the socket holds and hands each complete message to the handler.
    private func receive() {
        // A bounded number of reads per wake-up, so one busy peer cannot starve the loop.
        for _ in 0..<16 {
            guard !isClosed else { return }
            makeRoom(Self.readChunk)
            let count = input.withUnsafeMutableBytes { buffer in
                recv(fd, buffer.baseAddress! + readEnd, buffer.count - readEnd, Int32(MSG_DONTWAIT))
            }
            if count > 0 {
                readEnd += count
                guard deliverComplete() else { return }
                if count < Self.readChunk { return }
                continue
            }
            if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
            // End of stream or a reset: the peer is gone.
            close()
            return
        }
    }

    /// Ensures `room` free bytes after `readEnd`, moving unparsed bytes to the front first.
    private func makeRoom(_ room: Int) {
        if input.count - readEnd >= room { return }
        let unparsed = readEnd - readStart
        if readStart > 0 {
            input.withUnsafeMutableBytes { buffer in
                let base = buffer.baseAddress!
                base.copyMemory(from: base + readStart, byteCount: unparsed)
            }
            readStart = 0
            readEnd = unparsed
        }
        if input.count - readEnd < room {
            // A larger buffer, its free part left as it comes: only bytes before `readEnd` are read.
            let size = max(readEnd + room, input.count * 2)
            let old = input
            input = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                old.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<unparsed])) }
                count = size
            }
        }
    }

    /// Parses and delivers whole messages. - Returns: false when the stream was corrupt (closed).
    private func deliverComplete() -> Bool {
        while !isClosed {
            guard let size = nextMessageSize() else { return !isClosed }
            guard readEnd - readStart >= size else {
                // Room for more of a large message, growing by at most doubling: a header that
                // claims more than the peer sends costs only what actually arrives.
                makeRoom(min(size - (readEnd - readStart), max(Self.readChunk, input.count)))
                return true
            }
            let message = input.withUnsafeBytes { buffer in
                Self.decode(UnsafeRawBufferPointer(rebasing: buffer[readStart..<(readStart + size)]), prefix: prefix)
            }
            readStart += size
            if readStart == readEnd {
                readStart = 0
                readEnd = 0
            }
            handler(message)
        }
        return false
    }

    /// The size of the message starting at `readStart`, once its header has arrived.
    private func nextMessageSize() -> Int? {
        let available = readEnd - readStart
        guard available >= 4 else { return nil }
        return input.withUnsafeBytes { buffer -> Int? in
            let base = buffer.baseAddress! + readStart
            let frames = Int(base.loadUnaligned(as: UInt32.self).littleEndian)
            guard frames <= Self.maximumFrames else {
                close()
                return nil
            }
            let headerSize = 4 + 4 * frames
            guard available >= headerSize else { return nil }
            var total = headerSize
            for index in 0..<frames {
                total += Int(base.loadUnaligned(fromByteOffset: 4 + 4 * index, as: UInt32.self).littleEndian)
            }
            guard total <= Self.maximumMessageBytes else {
                close()
                return nil
            }
            return total
        }
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, prefix: [UInt8]?) -> Message {
        let count = Int(bytes.loadUnaligned(as: UInt32.self).littleEndian)
        var frames: [[UInt8]] = []
        frames.reserveCapacity(count + 1)
        if let prefix { frames.append(prefix) }
        var offset = 4 + 4 * count
        for index in 0..<count {
            let length = Int(bytes.loadUnaligned(fromByteOffset: 4 + 4 * index, as: UInt32.self).littleEndian)
            frames.append([UInt8](UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])))
            offset += length
        }
        return Message(frames)
    }

    // MARK: addresses

    /// Runs `body` with the abstract-namespace Unix address that serves `address` on this host.
    /// Abstract names vanish with the socket that holds them, so nothing is left on disk.
    static func withAbstractAddress<T>(
        for address: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T
    ) -> T {
        var storage = sockaddr_un()
        storage.sun_family = sa_family_t(AF_UNIX)
        let name = Array("shoal-link \(address)".utf8.prefix(MemoryLayout.size(ofValue: storage.sun_path) - 1))
        withUnsafeMutableBytes(of: &storage.sun_path) { path in
            path[0] = 0
            for (index, byte) in name.enumerated() { path[index + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.count)
        return withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    static func setNonBlocking(_ fd: Int32) -> Bool {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0
    }
}
