import Dispatch
import Foundation
import ShoalWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Artifacts that cross the registry's socket in pieces (`ArtifactChunk`), so that moving the
/// bytes runs beside hashing them instead of after it: on a download the registry sends each
/// piece before hashing it, on an upload it writes and hashes each piece as it arrives while
/// the next is on the wire.
enum ArtifactPieces {
    /// The size of a piece: small enough that the transfer of one overlaps the hash of the
    /// next, large enough that a message's own cost stays small beside its bytes.
    static let size = 256 << 10
}

extension ArtifactStore {
    /// Reads the artifact `sha` a piece at a time, handing each piece to `send` before hashing it.
    /// - Returns: the artifact's size.
    /// - Throws: `RegistryError` when the artifact is missing, or corrupted (its bytes do not
    ///   hash to `sha`; the pieces sent must then be thrown away).
    func stream(sha: String, piece: Int, send: (_ offset: UInt64, _ total: UInt64, _ bytes: [UInt8]) throws -> Void) throws -> UInt64 {
        let path = path(of: sha)
        guard SHA256.isHexDigest(sha) else {
            throw RegistryError.unavailable("artifact '\(sha.prefix(80))' is not a SHA-256 hex digest")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw RegistryError.unavailable(
                errno == ENOENT
                    ? "artifact \(sha) is missing from the artifact store at \(root)"
                    : "cannot open artifact \(sha) in \(root): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw RegistryError.unavailable("cannot read artifact \(sha) in \(root): \(String(cString: strerror(errno)))")
        }
        let total = UInt64(info.st_size)
        let hasher = try SHA256.Hasher()
        var offset: UInt64 = 0
        while offset < total {
            let count = Int(min(UInt64(piece), total - offset))
            let (bytes, error) = Files.read(descriptor, count: count, at: Int(offset))
            let failure = error != 0 ? error : bytes.count < count ? EIO : 0
            guard failure == 0 else {
                throw RegistryError.unavailable(
                    "cannot read artifact \(sha) in \(root) at byte \(offset): \(String(cString: strerror(failure)))")
            }
            try send(offset, total, bytes)
            bytes.withUnsafeBytes(hasher.update)
            offset += UInt64(count)
        }
        let actual = hasher.hexDigest()
        guard actual == sha else {
            throw RegistryError.corrupted(
                "artifact \(sha) in \(root) is corrupted: its \(total) bytes hash to \(actual); restore it from a copy or register the version again"
            )
        }
        return total
    }
}

extension ArtifactStore {
    /// Hands the artifact `sha` to `write` a piece at a time, hashing each, and checks the hash
    /// at the end (the pieces written must then be thrown away when it throws).
    /// - Throws: `RegistryError` when it is missing or corrupted, or what `write` throws (at once).
    /// - Returns: the artifact's size.
    func copy(sha: String, piece: Int = ArtifactPieces.size, write: (UnsafeRawBufferPointer) throws -> Void) throws -> UInt64 {
        try stream(sha: sha, piece: piece) { _, _, bytes in try bytes.withUnsafeBytes(write) }
    }
}

/// Seconds on a clock that never steps (idle uploads are timed on it).
private func monotonicSeconds() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000_000) }

/// One artifact arriving in pieces, hashed on one queue and written to a staging file on
/// another, each in the order the pieces came: the hash (the longest part) runs on one core
/// while the other takes the transfer and the writes.
final class ArtifactUpload: @unchecked Sendable {
    // @unchecked: `hasher`, `received`, `total`, `failure` and `hashClosed` are touched only
    // on `hashing`; `descriptor`, `written`, `writeFailure` and `writeClosed` only on
    // `writing`; `failed` and `lastActivity` are atomic.
    private let hashing = DispatchQueue(label: "shoal-registry-upload-hash")
    private let writing = DispatchQueue(label: "shoal-registry-upload-write")
    private let store: ArtifactStore
    private let temporary: String
    private var descriptor: Int32
    private let hasher: SHA256.Hasher
    private var received: UInt64 = 0
    private var total: UInt64?
    private var failure: RegistryError?
    private var hashClosed = false
    private var written: UInt64 = 0
    private var writeFailure: RegistryError?
    private var writeClosed = false
    /// Set by the hashing side on a failure, so that the writing side stops too.
    private let failed = Atomic<Bool>(false)
    /// When the last piece came (`monotonicSeconds`), for dropping uploads nobody names.
    let lastActivity = Atomic<Int64>(monotonicSeconds())
    /// The size its first piece declared (what it may take on disk).
    let declared: UInt64

    /// - Throws: `RegistryError.unavailable` when the staging file cannot be made.
    init(store: ArtifactStore, declared: UInt64) throws {
        self.store = store
        self.declared = declared
        temporary = store.stagingPath()
        hasher = try SHA256.Hasher()
        descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw RegistryError.unavailable("cannot stage an upload at \(temporary): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        unlink(temporary)
    }

    /// Queues one piece for hashing, then writing (the next piece hashes while this one is
    /// written). A piece out of order, past the declared size or over the store's limit fails
    /// the upload; the failure is told when it is named.
    /// - Parameter pacing: when given, waited on before the piece is queued and signalled once
    ///   it is written, so that a fast reader holds only that many pieces in memory.
    func append(offset: UInt64, total: UInt64, bytes: [UInt8], pacing: DispatchSemaphore? = nil) {
        lastActivity.store(monotonicSeconds(), ordering: .relaxed)
        pacing?.wait()
        hashing.async {
            self.hash(offset: offset, total: total, bytes: bytes)
            self.writing.async {
                self.write(bytes)
                pacing?.signal()
            }
        }
    }

    private func fail(_ error: RegistryError) {
        failure = error
        failed.store(true, ordering: .relaxed)
    }

    private func hash(offset: UInt64, total: UInt64, bytes: [UInt8]) {
        guard failure == nil else { return }
        guard !hashClosed else {
            return fail(.invalid("a piece of the upload came at byte \(offset) after its registration named it"))
        }
        if self.total == nil {
            guard total <= store.maxSize else {
                return fail(
                    .invalid("the artifact is \(formatBytes(total)), over the registry's limit of \(formatBytes(store.maxSize))"))
            }
            self.total = total
        }
        guard total == self.total else {
            return fail(.invalid("a piece of the upload gives its size as \(total) bytes, the first gave \(self.total ?? 0)"))
        }
        guard offset == received, UInt64(bytes.count) <= total - received else {
            return fail(
                .invalid(
                    "upload piece at byte \(offset) (\(bytes.count) bytes of \(total)) does not follow the \(received) bytes received"
                ))
        }
        bytes.withUnsafeBytes(hasher.update)
        received += UInt64(bytes.count)
    }

    /// Writes one piece; stops once the hashing side failed, past the store's limit, or after
    /// the registration (the hashing side tells why).
    private func write(_ bytes: [UInt8]) {
        guard writeFailure == nil, !writeClosed, !failed.load(ordering: .relaxed),
            written + UInt64(bytes.count) <= store.maxSize
        else { return }
        let failure = bytes.withUnsafeBytes { Files.write($0, to: descriptor) }
        guard failure == 0 else {
            writeFailure = .unavailable("cannot write an upload to \(temporary): \(String(cString: strerror(failure)))")
            return
        }
        written += UInt64(bytes.count)
    }

    /// Waits for the pieces queued so far, checks that all `size` bytes came and hash to
    /// `sha` (when named), lets `check` look at the staged file, and moves it into the store.
    /// Pieces that come later fail nothing but themselves.
    /// - Returns: the artifact's hash.
    /// - Throws: the upload's failure, or `RegistryError.invalid` naming what does not add up.
    func finish(size: UInt64, sha named: String, check: (String) throws -> Void) throws -> String {
        let sha = try hashing.sync { () throws -> String in
            hashClosed = true
            if let failure { throw failure }
            guard let total, total == size, received == size else {
                throw RegistryError.invalid(
                    "the upload holds \(received) of \(total ?? 0) bytes, not the \(size) the registration names")
            }
            return hasher.hexDigest()
        }
        guard named.isEmpty || named == sha else {
            throw RegistryError.invalid("the artifact's bytes hash to \(sha), not the \(named.prefix(80)) the request names")
        }
        try writing.sync {
            writeClosed = true
            if let writeFailure { throw writeFailure }
            guard written == size else {
                throw RegistryError.unavailable("the upload's staging file holds \(written) of its \(size) bytes")
            }
            close(descriptor)
            descriptor = -1
        }
        try check(temporary)
        try store.settle(temporary, as: sha, size: size)
        return sha
    }
}

extension ArtifactStore {
    /// Stores the `size` bytes of an open file under their hash, a piece at a time (read here,
    /// hashed and written on two queues, a few pieces in memory at most).
    /// - Returns: the hash.
    /// - Throws: `RegistryError` when the file is over the limit, cannot be read whole (it
    ///   changed size meanwhile), or the store cannot take it.
    func put(contentsOf descriptor: Int32, size: UInt64, path: String) throws -> String {
        guard size <= maxSize else {
            throw RegistryError.invalid(
                "\(path) is \(formatBytes(size)), over the registry's artifact limit of \(formatBytes(maxSize))")
        }
        if size == 0 { return try put([]) }
        let upload = try ArtifactUpload(store: self, declared: size)
        let pacing = DispatchSemaphore(value: 8)
        var offset: UInt64 = 0
        // `.invalid` when the source fails: it is at fault, not the store (which a client would
        // take as a reason to send the bytes through the registry instead).
        do {
            while offset < size {
                let count = Int(min(UInt64(ArtifactPieces.size), size - offset))
                let bytes = try Files.read(descriptor, exactly: count, at: Int(offset), of: path)
                upload.append(offset: offset, total: size, bytes: bytes, pacing: pacing)
                offset += UInt64(count)
            }
            try Files.checkEnds(descriptor, at: Int(size), of: path)
        } catch let failure as Files.Failure {
            throw RegistryError.invalid(failure.message)
        }
        return try upload.finish(size: size, sha: "") { _ in }
    }
}

/// The uploads in progress, by sender and upload id. An upload nobody names within
/// `ArtifactUploads.idleLimit` of its last piece is dropped with its staging file when a new
/// upload starts or one is named, or at the registry's next sweep (every half minute).
final class ArtifactUploads: Sendable {
    struct Key: Hashable {
        let peer: [UInt8]
        let id: UInt64
    }

    /// An upload made, or the reason its first piece could not start one.
    private enum Entry: Sendable {
        case open(ArtifactUpload)
        case refused(RegistryError, since: Int64)
    }

    static let idleLimit: Int64 = 120
    /// The most uploads open at once, and from one sender: the first pieces of further ones
    /// are refused, and so are their registrations.
    static let limit = 256
    static let limitPerSender = 8
    /// The most bytes the open uploads may declare together (each may take its size in the
    /// staging folder before it is named).
    let stagedLimit: UInt64
    private let table = Mutex<[Key: Entry]>([:])
    /// Uploads started since the registry did.
    let begun = Atomic<Int>(0)

    init(stagedLimit: UInt64 = 8 << 30) { self.stagedLimit = stagedLimit }

    /// Queues one piece on its upload, making the upload at its first piece. Pieces with no
    /// bytes, or under upload id 0, are ignored.
    func receive(_ chunk: Shoal_V1_ArtifactChunk, bytes: [UInt8]?, from peer: [UInt8], store: ArtifactStore) {
        guard chunk.uploadID != 0, let bytes, !bytes.isEmpty else { return }
        let key = Key(peer: peer, id: chunk.uploadID)
        let upload: ArtifactUpload? = table.withLock { entries in
            switch entries[key] {
            case .open(let known): return known
            case .refused: return nil
            case nil: break
            }
            guard chunk.offset == 0 else { return nil }
            let now = monotonicSeconds()
            // A new upload: the idle ones go first, so that they count against no limit.
            Self.dropIdle(from: &entries, now: now)
            guard entries.count < Self.limit else {
                entries[key] = .refused(.unavailable("the registry has \(Self.limit) uploads open; try again"), since: now)
                return nil
            }
            guard entries.keys.filter({ $0.peer == peer }).count < Self.limitPerSender else {
                entries[key] = .refused(
                    .invalid("this client has \(Self.limitPerSender) uploads open already; name or abandon them first"),
                    since: now)
                return nil
            }
            guard chunk.total <= store.maxSize else {
                entries[key] = .refused(
                    .invalid(
                        "the artifact is \(formatBytes(chunk.total)), over the registry's limit of \(formatBytes(store.maxSize))"),
                    since: now)
                return nil
            }
            let staged = entries.values.reduce(UInt64(0)) { sum, entry in
                if case .open(let upload) = entry { sum + upload.declared } else { sum }
            }
            // One upload alone is never refused for the budget (the artifact limit bounds it).
            guard staged == 0 || chunk.total <= stagedLimit - min(staged, stagedLimit) else {
                entries[key] = .refused(
                    .unavailable(
                        "the registry is taking \(formatBytes(staged)) of uploads already; with this one's \(formatBytes(chunk.total)) that is over its limit of \(formatBytes(stagedLimit)); try again"
                    ), since: now)
                return nil
            }
            // The other open uploads may still write what they declared.
            if let free = store.freeBytes(), chunk.total + staged > free {
                entries[key] = .refused(
                    .unavailable(
                        "the artifact store at \(store.root) has \(formatBytes(free)) free, not enough for an upload of \(formatBytes(chunk.total)) beside the \(formatBytes(staged)) of uploads in progress"
                    ), since: now)
                return nil
            }
            do {
                let made = try ArtifactUpload(store: store, declared: chunk.total)
                entries[key] = .open(made)
                begun.add(1, ordering: .relaxed)
                return made
            } catch let error as RegistryError {
                entries[key] = .refused(error, since: now)
            } catch {
                entries[key] = .refused(.unavailable("cannot stage an upload: \(error)"), since: now)
            }
            return nil
        }
        upload?.append(offset: chunk.offset, total: chunk.total, bytes: bytes)
    }

    /// Takes the upload a registration names: it is finished (or dropped) by the caller.
    /// - Throws: why the upload could not start, or `RegistryError.invalid` when this sender
    ///   has no such upload.
    func take(_ id: UInt64, from peer: [UInt8]) throws -> ArtifactUpload {
        dropIdle()
        switch table.withLock({ $0.removeValue(forKey: Key(peer: peer, id: id)) }) {
        case .open(let upload): return upload
        case .refused(let error, _): throw error
        case nil:
            throw RegistryError.invalid(
                "no artifact upload \(id) from this client: its first piece never came, or it was idle over \(Self.idleLimit) s")
        }
    }

    /// Drops uploads (and refusals) idle past the limit; their staging files go with them.
    func dropIdle() {
        let now = monotonicSeconds()
        table.withLock { Self.dropIdle(from: &$0, now: now) }
    }

    private static func dropIdle(from entries: inout [Key: Entry], now: Int64) {
        entries = entries.filter { _, entry in
            switch entry {
            case .open(let upload): now - upload.lastActivity.load(ordering: .relaxed) <= idleLimit
            case .refused(_, let since): now - since <= idleLimit
            }
        }
    }

    /// Uploads open (refusals not counted).
    var count: Int {
        table.withLock { entries in
            entries.values.count { if case .open = $0 { true } else { false } }
        }
    }
}
