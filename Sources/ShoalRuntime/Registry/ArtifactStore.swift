import Dispatch
import Foundation
import ShoalWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Model artifacts, content-addressed by SHA-256 in a folder (local, or a path several hosts
/// share): `<root>/<first two hex digits>/<sha256>`. Every read checks the hash.
///
/// The registry serves a store, and a client that sees the same folder (same host, or a shared
/// mount) attaches to it and moves artifacts in and out itself, as MLflow's clients do with
/// their artifact stores; `.shoal-store` in the folder names the store so that a client never
/// mistakes another folder at the same path for it.
public struct ArtifactStore: Sendable {
    /// An absolute path.
    public let root: String
    /// The largest artifact accepted.
    public let maxSize: UInt64
    /// What `.shoal-store` holds: a random name given when the store was made.
    public let identifier: String

    public static let defaultMaxSize: UInt64 = 2 << 30
    static let identifierFile = ".shoal-store"
    /// Reads and hashes go this many bytes at a time, so the hash reads what was just copied.
    private static let chunk = 256 << 10

    /// Opens the store at `root`, making the folder and its identifier when new.
    /// - Throws: `RegistryError.unavailable` when the folder cannot be made or named.
    public init(root: String, maxSize: UInt64 = defaultMaxSize) throws {
        let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        do {
            try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: true)
        } catch {
            throw RegistryError.unavailable("cannot create the artifact store at \(absolute): \(error.localizedDescription)")
        }
        self.init(root: absolute, maxSize: maxSize, identifier: try Self.identifier(of: absolute))
    }

    private init(root: String, maxSize: UInt64, identifier: String) {
        self.root = root
        self.maxSize = maxSize
        self.identifier = identifier
    }

    /// The store a registry described, when this process sees the same one at its path.
    /// - Returns: nil when `root` is absent here or holds another store.
    public static func attach(root: String, identifier: String, maxSize: UInt64) -> ArtifactStore? {
        guard root.hasPrefix("/"), !identifier.isEmpty, let found = Files.read(root + "/" + identifierFile),
            String(decoding: found, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == identifier
        else { return nil }
        return ArtifactStore(root: root, maxSize: maxSize, identifier: identifier)
    }

    /// The store's name from `.shoal-store`, written first by whoever finds it missing (a link,
    /// so two registries starting on one folder agree on the name).
    private static func identifier(of root: String) throws -> String {
        let path = root + "/" + identifierFile
        func existing() -> String? {
            Files.read(path).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
                .flatMap { $0.isEmpty ? nil : $0 }
        }
        if let name = existing() { return name }
        let name = UUID().uuidString.lowercased()
        let temporary = path + ".\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try Files.create(Array((name + "\n").utf8), at: temporary)
        } catch {
            throw RegistryError.unavailable("cannot name the artifact store at \(root): \(error)")
        }
        defer { unlink(temporary) }
        if link(temporary, path) == 0 { return name }
        guard errno == EEXIST, let winner = existing() else {
            throw RegistryError.unavailable("cannot name the artifact store at \(root): \(String(cString: strerror(errno)))")
        }
        return winner
    }

    /// The name the store gives `bytes`: their SHA-256 in lowercase hex.
    public static func address(of bytes: [UInt8]) -> String { SHA256.hexDigest(of: bytes) }

    func path(of sha: String) -> String { "\(root)/\(sha.prefix(2))/\(sha)" }

    /// Stores `bytes` under their hash (once; a present, intact copy is kept).
    /// - Parameter sha: the hash the sender names, checked; empty to have it computed here.
    /// - Returns: the hash.
    /// - Throws: `RegistryError` when the bytes do not hash to `sha`, are too large, or cannot be written.
    @discardableResult
    public func put(_ bytes: [UInt8], sha256 sha: String = "") throws -> String {
        guard UInt64(bytes.count) <= maxSize else {
            throw RegistryError.invalid(
                "the artifact is \(formatBytes(UInt64(bytes.count))), over the registry's limit of \(formatBytes(maxSize))")
        }
        // The bytes go to a temporary file on another thread while this one hashes them: the
        // file's final name is the hash, known only at the end.
        let temporary = stagingPath()
        let actual: String
        if bytes.count <= Self.chunk {
            // Small: the other thread would cost more than it saves.
            do { try Files.create(bytes, at: temporary) } catch { throw RegistryError.unavailable("\(error)") }
            actual = Self.address(of: bytes)
        } else {
            let written = Mutex<(any Error)?>(nil)
            let writing = DispatchGroup()
            DispatchQueue.global().async(group: writing) {
                do {
                    try Files.create(bytes, at: temporary)
                } catch {
                    written.withLock { $0 = RegistryError.unavailable("\(error)") }
                }
            }
            actual = Self.address(of: bytes)
            writing.wait()
            if let failure = written.withLock({ $0 }) { throw failure }
        }
        guard sha.isEmpty || actual == sha else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw RegistryError.invalid("the artifact's bytes hash to \(actual), not the \(sha.prefix(80)) the request names")
        }
        try settle(temporary, as: actual, size: UInt64(bytes.count))
        return actual
    }

    /// Removes staging files older than `age` seconds: left by a registry or client that died
    /// mid-write (an upload's file is written to at least every two minutes, or the upload is dropped).
    func sweepStaging(olderThan age: TimeInterval = 3600) {
        let staging = stagingFolder
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: staging) else { return }
        let now = Date().timeIntervalSince1970
        for name in names {
            var info = stat()
            let path = staging + "/" + name
            if stat(path, &info) == 0, now - TimeInterval(info.st_mtim.tv_sec) > age { unlink(path) }
        }
    }

    /// The bytes free for this user on the store's file system, or nil when it cannot tell.
    func freeBytes() -> UInt64? {
        var info = statvfs()
        guard statvfs(root, &info) == 0 else { return nil }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize)
    }

    /// Where files wait for their hash before they take their place in the store.
    var stagingFolder: String { root + "/.incoming" }

    /// A new path in the store's staging folder, for a file whose name (its hash) is not known yet.
    func stagingPath() -> String {
        let staging = stagingFolder
        // One system call (the folder is there but for the first file, or after someone
        // removed it); a failure shows when the file is created.
        mkdir(staging, 0o755)
        return staging + "/\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    }

    /// Moves a complete staged file into place under its hash `sha`, or drops it where an
    /// intact copy is there already.
    /// - Throws: `RegistryError.unavailable` when it cannot be moved.
    func settle(_ temporary: String, as sha: String, size: UInt64) throws {
        let target = path(of: sha)
        // An intact copy (hashed a piece at a time, never whole in memory) stays; a corrupted
        // one is replaced by this one.
        if let existing = try? copy(sha: sha, write: { _ in }), existing == size {
            try? FileManager.default.removeItem(atPath: temporary)
            return
        }
        // The folder (the hash's first two digits) is made when the first rename into it fails.
        var moved = rename(temporary, target) == 0
        if !moved, errno == ENOENT {
            mkdir("\(root)/\(sha.prefix(2))", 0o755)
            moved = rename(temporary, target) == 0
        }
        guard moved else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw RegistryError.unavailable("cannot move the artifact into place at \(target): \(reason)")
        }
    }

    /// Checks that a client's `put` left an artifact of `size` bytes under `sha` (its bytes are
    /// checked against the hash on every read).
    /// - Throws: `RegistryError.invalid` naming what is missing or wrong.
    func checkStored(sha: String, size: UInt64) throws {
        guard SHA256.isHexDigest(sha) else {
            throw RegistryError.invalid("artifact hash '\(sha.prefix(80))' is not a SHA-256 hex digest")
        }
        guard size <= maxSize else {
            throw RegistryError.invalid("the artifact is \(formatBytes(size)), over the registry's limit of \(formatBytes(maxSize))")
        }
        var info = stat()
        guard stat(path(of: sha), &info) == 0 else {
            throw RegistryError.invalid("artifact \(sha) is not in the artifact store at \(root); send its bytes instead")
        }
        guard UInt64(info.st_size) == size else {
            throw RegistryError.invalid("artifact \(sha) in \(root) has \(info.st_size) bytes, not the \(size) the request names")
        }
    }

    /// The artifact's bytes, checked against its hash (read and hashed a chunk at a time).
    /// - Throws: `RegistryError` naming the artifact when it is missing or corrupted.
    public func read(sha: String) throws -> [UInt8] {
        let hasher = try SHA256.Hasher()
        guard SHA256.isHexDigest(sha), let bytes = Files.read(path(of: sha), chunk: Self.chunk, each: hasher.update) else {
            throw RegistryError.unavailable("artifact \(sha.prefix(80)) is missing from the artifact store at \(root)")
        }
        let actual = hasher.hexDigest()
        guard actual == sha else {
            throw RegistryError.corrupted(
                "artifact \(sha) in \(root) is corrupted: its \(bytes.count) bytes hash to \(actual); restore it from a copy or register the version again"
            )
        }
        return bytes
    }

    /// Checks that `bytes` are a safetensors file: an 8-byte little-endian header length, then
    /// that much JSON whose tensors fill the data back to back (`SafeTensorsLayout`).
    static func validateSafetensors(_ bytes: [UInt8]) throws {
        do {
            _ = try SafeTensorsLayout.parse(bytes)
        } catch let error as SafeTensorsLayoutError {
            throw RegistryError.invalid("the artifact is not a safetensors file: \(error.message)")
        }
    }

    /// The same check of a file, reading its header only (not the tensors, nor their hash).
    /// - Throws: `RegistryError.invalid` for a file that is not safetensors, `.unavailable`
    ///   when it cannot be read.
    static func validateSafetensors(atPath path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw RegistryError.unavailable("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        try validateSafetensors(descriptor: descriptor, path: path)
    }

    /// The same check of an open file (`path` names it in errors).
    static func validateSafetensors(descriptor: Int32, path: String) throws {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw RegistryError.unavailable("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let size = Int(info.st_size)
        var head = Files.read(descriptor, count: min(size, 8), at: 0).bytes
        let length = SafeTensorsLayout.headerLength(head[...])
        if head.count == 8, length <= SafeTensorsLayout.maximumHeader, length <= UInt64(size - 8) {
            head += Files.read(descriptor, count: Int(length), at: 8).bytes
        }
        do {
            _ = try SafeTensorsLayout.parse(head: head[...], fileSize: size)
        } catch let error as SafeTensorsLayoutError {
            throw RegistryError.invalid("the artifact is not a safetensors file: \(error.message)")
        }
    }
}

/// A registry request that cannot be carried out.
public struct RegistryError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case invalid, notFound, denied, corrupted, unavailable }
    public let kind: Kind
    public let message: String
    public var description: String { message }

    static func invalid(_ message: String) -> Self { Self(kind: .invalid, message: message) }
    static func notFound(_ message: String) -> Self { Self(kind: .notFound, message: message) }
    static func denied(_ message: String) -> Self { Self(kind: .denied, message: message) }
    static func corrupted(_ message: String) -> Self { Self(kind: .corrupted, message: message) }
    static func unavailable(_ message: String) -> Self { Self(kind: .unavailable, message: message) }
}
