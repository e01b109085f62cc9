import Foundation
import ShoalTransport
import ShoalWire

#if canImport(Glibc)
    import Glibc
#endif

/// An object being pulled from another node, chunk by chunk.
struct ObjectPull {
    var descriptor: Int32
    var size: UInt64
    var received: UInt64 = 0
    var nextOffset: UInt64 = 0
    var source: String
    /// When the last piece came (or the pull began).
    var lastProgress = ContinuousClock.now
}

extension NodeDaemon {
    static let chunkSize: UInt64 = 8 << 20
    static let chunksInFlight = 4

    /// Object requests from drivers, executors and other node daemons.
    func handleObjectMessage(_ incoming: Incoming) throws -> Bool {
        let peer = incoming.sender
        let requestID = incoming.envelope.requestID
        switch incoming.envelope.body {
        case .createObject(let create):
            do {
                let path = try objects.create(create.key, size: create.size, jobID: create.jobID)
                var placed = Shoal_V1_ObjectPlaced()
                placed.key = create.key
                placed.path = path
                placed.size = create.size
                try executorSocket.send(Envelope(requestID, .objectPlaced(placed)), to: peer)
            } catch {
                try executorSocket.send(.error(requestID, .invalidArgument, "\(error)"), to: peer)
            }
        case .sealObject(let seal):
            objects.seal(seal.key)
            answerWaiters(seal.key)
        case .getObject(let get):
            try getObject(get, peer: peer, requestID: requestID)
        case .freeObjects(let free):
            for key in free.keys { objects.free(key) }
        case .pullChunk(let pull):
            try sendChunk(pull, to: peer)
        default:
            return false
        }
        return true
    }

    private func getObject(_ get: Shoal_V1_GetObject, peer: [UInt8], requestID: UInt64) throws {
        try ObjectStore.validate(get.key)
        if objects.isSealed(get.key) {
            try answer(get.key, peer: peer, requestID: requestID)
            return
        }
        if objects.contains(get.key) {
            // Being written here, or pulled: answer once it is sealed.
            objectWaiters[get.key, default: []].append((peer, requestID))
            return
        }
        guard get.hasSource, !get.source.nodeAddress.isEmpty, get.source.nodeAddress != address else {
            try executorSocket.send(.error(requestID, .notFound, "object \(get.key) is not in node \(nodeID)'s store"), to: peer)
            return
        }
        objectWaiters[get.key, default: []].append((peer, requestID))
        try startPull(get.key, size: get.source.size, from: get.source.nodeAddress, jobID: get.jobID)
    }

    private func answer(_ key: String, peer: [UInt8], requestID: UInt64) throws {
        do {
            guard let path = try objects.locate(key) else {
                try executorSocket.send(.error(requestID, .notFound, "object \(key) is not in node \(nodeID)'s store"), to: peer)
                return
            }
            var placed = Shoal_V1_ObjectPlaced()
            placed.key = key
            placed.path = path
            placed.size = objects.entries[key]?.size ?? 0
            try executorSocket.send(Envelope(requestID, .objectPlaced(placed)), to: peer)
        } catch {
            try executorSocket.send(.error(requestID, .unavailable, "cannot restore object \(key): \(error)"), to: peer)
        }
    }

    private func answerWaiters(_ key: String) {
        for (peer, requestID) in objectWaiters.removeValue(forKey: key) ?? [] {
            try? answer(key, peer: peer, requestID: requestID)
        }
    }

    private func failWaiters(_ key: String, reason: String) {
        for (peer, requestID) in objectWaiters.removeValue(forKey: key) ?? [] {
            try? executorSocket.send(.error(requestID, .unavailable, reason), to: peer)
        }
    }

    // MARK: pulling from other nodes

    private func startPull(_ key: String, size: UInt64, from source: String, jobID: String) throws {
        let path = try objects.create(key, size: size, jobID: jobID)
        let descriptor = open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            objects.free(key)
            throw ClusterError.peerError("cannot open \(path) to receive object \(key)")
        }
        pulls[key] = ObjectPull(descriptor: descriptor, size: size, source: source)
        if size == 0 {
            finishPull(key)
            return
        }
        for _ in 0..<Self.chunksInFlight { requestNextChunk(key) }
    }

    private func requestNextChunk(_ key: String) {
        guard var pull = pulls[key], pull.nextOffset < pull.size else { return }
        var request = Shoal_V1_PullChunk()
        request.key = key
        request.offset = pull.nextOffset
        request.length = min(Self.chunkSize, pull.size - pull.nextOffset)
        pull.nextOffset += request.length
        pulls[key] = pull
        do {
            try peerSocket(pull.source).send(Envelope(0, .pullChunk(request)))
        } catch {
            abandonPull(key, reason: "cannot reach node \(pull.source): \(error)")
        }
    }

    private func peerSocket(_ address: String) throws -> Socket {
        if let socket = peerNodes[address] { return socket }
        let socket = try loop.dealer(connectedTo: address) { [weak self] message in
            self?.assumeIsolated { $0.receiveFromPeerNode(message) }
        }
        peerNodes[address] = socket
        return socket
    }

    private func receiveFromPeerNode(_ message: ShoalTransport.Message) {
        guard let incoming = try? Incoming(message, routed: false) else {
            malformed += 1
            return
        }
        switch incoming.envelope.body {
        case .objectChunk(let chunk):
            receiveChunk(chunk, bytes: incoming.payloads.first ?? [])
        case .error(let error):
            // A failed pull names its key in the message; fail every pull from that peer's answer.
            for key in pulls.keys where error.message.contains(key) { abandonPull(key, reason: error.message) }
        default:
            malformed += 1
        }
    }

    private func receiveChunk(_ chunk: Shoal_V1_ObjectChunk, bytes: [UInt8]) {
        guard var pull = pulls[chunk.key] else { return }
        guard chunk.error.isEmpty else {
            abandonPull(chunk.key, reason: chunk.error)
            return
        }
        guard chunk.offset + UInt64(bytes.count) <= pull.size else {
            abandonPull(chunk.key, reason: "a chunk ran past the object's end")
            return
        }
        let written = bytes.withUnsafeBytes { pwrite(pull.descriptor, $0.baseAddress, $0.count, off_t(chunk.offset)) }
        guard written == bytes.count else {
            abandonPull(chunk.key, reason: "writing a chunk failed: \(String(cString: strerror(errno)))")
            return
        }
        pull.received += UInt64(bytes.count)
        pull.lastProgress = .now
        pulls[chunk.key] = pull
        if pull.received >= pull.size {
            finishPull(chunk.key)
        } else {
            requestNextChunk(chunk.key)
        }
    }

    private func finishPull(_ key: String) {
        guard let pull = pulls.removeValue(forKey: key) else { return }
        close(pull.descriptor)
        objects.seal(key)
        answerWaiters(key)
    }

    /// How long a pull may go without a piece before its source counts as gone: three node
    /// timeouts, by when the head has declared a dead source dead (a ZeroMQ connection to a
    /// dead address says nothing; its requests just queue).
    var pullStallLimit: Duration { max(config.nodeTimeout * 3, .seconds(5)) }

    /// Fails the pulls whose source has sent nothing for `pullStallLimit`, and those waiting on them.
    func abandonStalledPulls() {
        let now = ContinuousClock.now
        for (key, pull) in pulls where now - pull.lastProgress > pullStallLimit {
            abandonPull(key, reason: "node \(pull.source) sent nothing for \(pullStallLimit) (it stopped or died)")
        }
    }

    private func abandonPull(_ key: String, reason: String) {
        guard let pull = pulls.removeValue(forKey: key) else { return }
        close(pull.descriptor)
        objects.free(key)
        failWaiters(key, reason: "pulling object \(key) failed: \(reason)")
    }

    /// Serves a piece of an object to another node, from memory or from disk.
    private func sendChunk(_ request: Shoal_V1_PullChunk, to peer: [UInt8]) throws {
        var chunk = Shoal_V1_ObjectChunk()
        chunk.key = request.key
        chunk.offset = request.offset
        guard let entry = objects.entries[request.key], let path = objects.currentPath(request.key),
            request.offset + request.length <= entry.size, request.length <= Self.chunkSize
        else {
            chunk.error = "node \(nodeID) has no object \(request.key) covering \(request.offset)+\(request.length)"
            try executorSocket.send(Envelope(0, .objectChunk(chunk)), to: peer)
            return
        }
        chunk.total = entry.size
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            chunk.error = "cannot open object \(request.key)"
            try executorSocket.send(Envelope(0, .objectChunk(chunk)), to: peer)
            return
        }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: Int(request.length))
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(request.offset)) }
        guard count == Int(request.length) else {
            chunk.error = "reading object \(request.key) failed"
            try executorSocket.send(Envelope(0, .objectChunk(chunk)), to: peer)
            return
        }
        try executorSocket.send(Envelope(0, .objectChunk(chunk)), payloads: [bytes], to: peer)
    }
}
