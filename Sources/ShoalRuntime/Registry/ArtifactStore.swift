import Dispatch
import Foundation
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
            do { try Self.write(bytes, to: temporary) } catch { written.withLock { $0 = error } }
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

    /// Writes a whole file with plain system calls (Foundation's writer syncs to disk each time;
    /// the version's row, committed after this, is what makes the artifact count).
    private static func write(_ bytes: [UInt8], to path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw RegistryError.unavailable("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + done, raw.count - done)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else {
                    let reason = String(cString: strerror(errno))
                    try? FileManager.default.removeItem(atPath: path)
                    throw RegistryError.unavailable("cannot write \(path): \(reason)")
                }
                done += written
            }
        }
    }

    /// Reads a whole file into an array with plain system calls.
    private static func readFile(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        let size = Int(info.st_size)
        var complete = true
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var done = 0
            while done < size {
                let got = Glibc.read(descriptor, buffer.baseAddress! + done, size - done)
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else { break }
                done += got
            }
            complete = done == size
            count = done
        }
        return complete ? bytes : nil
    }

    /// The artifact's bytes, checked against its hash.
    /// - Throws: `RegistryError` naming the artifact when it is missing or corrupted.
    public func read(sha: String) throws -> [UInt8] {
        guard Head.isValidDigest(sha), let bytes = Self.readFile(path(of: sha)) else {
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
    /// that much JSON whose tensors lie within the file.
    static func validateSafetensors(_ bytes: [UInt8]) throws {
        guard bytes.count >= 8 else { throw RegistryError.invalid("the artifact is not a safetensors file: under 8 bytes") }
        let length = bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(bytes.count - 8), length <= 100 << 20 else {
            throw RegistryError.invalid("the artifact is not a safetensors file: its header length \(length) overruns the file")
        }
        let header = Data(bytes[8..<8 + Int(length)])
        guard let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw RegistryError.invalid("the artifact is not a safetensors file: its header is not a JSON object")
        }
        let dataSize = UInt64(bytes.count) - 8 - length
        for (name, value) in object where name != "__metadata__" {
            guard let entry = value as? [String: Any], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2,
                offsets[0] >= 0, offsets[0] <= offsets[1], UInt64(offsets[1]) <= dataSize
            else {
                throw RegistryError.invalid(
                    "the artifact is not a valid safetensors file: tensor '\(name)' lies outside the data")
            }
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
