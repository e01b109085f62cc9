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
    func stream(sha: String, piece: Int, send: (_ offset: UInt64, _ total: UInt64, _ bytes: [UInt8]) -> Void) throws -> UInt64 {
        let path = path(of: sha)
        let descriptor = SHA256.isHexDigest(sha) ? open(path, O_RDONLY | O_CLOEXEC) : -1
        guard descriptor >= 0 else {
            throw RegistryError.unavailable("artifact \(sha.prefix(80)) is missing from the artifact store at \(root)")
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
            var failure: Int32 = 0
            let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                var done = 0
                while done < count {
                    let got = pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                    if got < 0 && errno == EINTR { continue }
                    guard got > 0 else {
                        failure = got == 0 ? EIO : errno
                        break
                    }
                    done += got
                }
                initialized = done
            }
            guard failure == 0 else {
                throw RegistryError.unavailable(
                    "cannot read artifact \(sha) in \(root) at byte \(offset): \(String(cString: strerror(failure)))")
            }
            send(offset, total, bytes)
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

/// One artifact arriving in pieces, hashed on one queue and written to a staging file on
/// another, each in the order the pieces came: the hash (the longest part) runs on one core
/// while the other takes the transfer and the writes.
final class ArtifactUpload: @unchecked Sendable {
    // @unchecked: `hasher`, `received`, `total` and `failure` are touched only on `hashing`;
    // `descriptor`, `written` and `writeFailure` only on `writing` (and in `finish` after both
    // queues are drained); `lastActivity` is atomic.
    private let hashing = DispatchQueue(label: "shoal-registry-upload-hash")
    private let writing = DispatchQueue(label: "shoal-registry-upload-write")
    private let store: ArtifactStore
    private let temporary: String
    private var descriptor: Int32
    private let hasher: SHA256.Hasher
    private var received: UInt64 = 0
    private var total: UInt64?
    private var failure: RegistryError?
    private var written: UInt64 = 0
    private var writeFailure: RegistryError?
    /// Seconds since the epoch of the last piece, for dropping uploads nobody names.
    let lastActivity = Atomic<Int64>(Int64(Date().timeIntervalSince1970))

    /// - Throws: `RegistryError.unavailable` when the staging file cannot be made.
    init(store: ArtifactStore) throws {
        self.store = store
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

    /// Queues one piece for hashing and writing. A piece out of order, past the declared size
    /// or over the store's limit fails the upload; the failure is told when it is named.
    func append(offset: UInt64, total: UInt64, bytes: [UInt8]) {
        lastActivity.store(Int64(Date().timeIntervalSince1970), ordering: .relaxed)
        hashing.async { self.hash(offset: offset, total: total, bytes: bytes) }
        writing.async { self.write(bytes) }
    }

    private func hash(offset: UInt64, total: UInt64, bytes: [UInt8]) {
        guard failure == nil else { return }
        if self.total == nil {
            guard total <= store.maxSize else {
                failure = .invalid(
                    "the artifact is \(formatBytes(total)), over the registry's limit of \(formatBytes(store.maxSize))")
                return
            }
            self.total = total
        }
        guard total == self.total, offset == received, UInt64(bytes.count) <= total - received else {
            failure = .invalid(
                "upload piece at byte \(offset) (\(bytes.count) bytes of \(total)) does not follow the \(received) bytes received of \(self.total ?? 0)"
            )
            return
        }
        bytes.withUnsafeBytes(hasher.update)
        received += UInt64(bytes.count)
    }

    /// Writes one piece; stops at the store's limit (the hashing side tells why).
    private func write(_ bytes: [UInt8]) {
        guard writeFailure == nil, written + UInt64(bytes.count) <= store.maxSize else { return }
        let complete = bytes.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let got = Glibc.write(descriptor, raw.baseAddress! + done, min(raw.count - done, Files.writePiece))
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else { return false }
                done += got
            }
            return true
        }
        guard complete else {
            writeFailure = .unavailable("cannot write an upload to \(temporary): \(String(cString: strerror(errno)))")
            return
        }
        written += UInt64(bytes.count)
    }

    /// Waits for the pieces queued so far, checks that all `size` bytes came, and moves the
    /// file into the store under its hash.
    /// - Returns: the artifact's hash.
    /// - Throws: the upload's failure, or `RegistryError.invalid` when bytes are missing.
    func finish(size: UInt64) throws -> String {
        let sha = try hashing.sync { () throws -> String in
            if let failure { throw failure }
            guard let total, total == size, received == size else {
                throw RegistryError.invalid(
                    "the upload holds \(received) of \(total ?? 0) bytes, not the \(size) the registration names")
            }
            return hasher.hexDigest()
        }
        try writing.sync {
            if let writeFailure { throw writeFailure }
            guard written == size else {
                throw RegistryError.unavailable("the upload's staging file holds \(written) of its \(size) bytes")
            }
            close(descriptor)
            descriptor = -1
        }
        try store.settle(temporary, as: sha, size: size)
        return sha
    }
}

/// The uploads in progress, by sender and upload id. An upload nobody names within
/// `ArtifactUploads.idleLimit` of its last piece is dropped with its staging file.
final class ArtifactUploads: Sendable {
    struct Key: Hashable {
        let peer: [UInt8]
        let id: UInt64
    }

    static let idleLimit: Int64 = 120
    /// The most uploads open at once; pieces of further ones are dropped, and their
    /// registrations refused.
    static let limit = 256
    private let open = Mutex<[Key: ArtifactUpload]>([:])

    /// Queues one piece on its upload, making the upload at its first piece.
    func receive(_ chunk: Shoal_V1_ArtifactChunk, bytes: [UInt8], from peer: [UInt8], store: ArtifactStore) {
        let key = Key(peer: peer, id: chunk.uploadID)
        let upload: ArtifactUpload? = open.withLock { uploads in
            if let known = uploads[key] { return known }
            guard chunk.offset == 0, uploads.count < Self.limit, let made = try? ArtifactUpload(store: store) else { return nil }
            uploads[key] = made
            return made
        }
        dropIdle()
        upload?.append(offset: chunk.offset, total: chunk.total, bytes: bytes)
    }

    /// Takes the upload a registration names: it is finished (or dropped) by the caller.
    /// - Throws: `RegistryError.invalid` when this sender has no such upload.
    func take(_ id: UInt64, from peer: [UInt8]) throws -> ArtifactUpload {
        guard let upload = open.withLock({ $0.removeValue(forKey: Key(peer: peer, id: id)) }) else {
            throw RegistryError.invalid(
                "no artifact upload \(id) from this client: its first piece never came, it was idle over \(Self.idleLimit) s, or \(Self.limit) others were open"
            )
        }
        return upload
    }

    /// Drops uploads idle past the limit (their staging files go with them).
    func dropIdle() {
        let now = Int64(Date().timeIntervalSince1970)
        open.withLock { uploads in
            uploads = uploads.filter { now - $0.value.lastActivity.load(ordering: .relaxed) <= Self.idleLimit }
        }
    }

    var count: Int { open.withLock { $0.count } }
}
