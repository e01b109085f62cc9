import Dispatch
import Foundation
import ShoalWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Model artifacts, content-addressed by SHA-256 in a folder (local, or a path several hosts
/// share): `<root>/<first two hex digits>/<sha256>`. Every read checks the hash.
public struct ArtifactStore: Sendable {
    public let root: String
    /// The largest artifact accepted.
    public let maxSize: UInt64

    public static let defaultMaxSize: UInt64 = 2 << 30

    public init(root: String, maxSize: UInt64 = defaultMaxSize) throws {
        self.root = root
        self.maxSize = maxSize
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        } catch {
            throw RegistryError.unavailable("cannot create the artifact store at \(root): \(error.localizedDescription)")
        }
    }

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
        let staging = root + "/.incoming"
        try? FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let temporary = staging + "/\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let written = Mutex<(any Error)?>(nil)
        let writing = DispatchGroup()
        DispatchQueue.global().async(group: writing) {
            do {
                try Files.create(bytes, at: temporary)
            } catch {
                written.withLock { $0 = RegistryError.unavailable("\(error)") }
            }
        }
        let actual = SHA256.hexDigest(of: bytes)
        writing.wait()
        if let failure = written.withLock({ $0 }) { throw failure }
        guard sha.isEmpty || actual == sha else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw RegistryError.invalid("the artifact's bytes hash to \(actual), not the \(sha.prefix(80)) the request names")
        }
        let target = path(of: actual)
        if let existing = try? read(sha: actual), existing.count == bytes.count {
            try? FileManager.default.removeItem(atPath: temporary)
            return actual
        }
        let folder = (target as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        guard rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw RegistryError.unavailable("cannot move the artifact into place at \(target): \(reason)")
        }
        return actual
    }

    /// The artifact's bytes, checked against its hash.
    /// - Throws: `RegistryError` naming the artifact when it is missing or corrupted.
    public func read(sha: String) throws -> [UInt8] {
        guard SHA256.isHexDigest(sha), let bytes = Files.read(path(of: sha)) else {
            throw RegistryError.unavailable("artifact \(sha.prefix(80)) is missing from the artifact store at \(root)")
        }
        let actual = SHA256.hexDigest(of: bytes)
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
