import Foundation

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
    /// - Throws: `RegistryError` when the bytes do not hash to `sha`, are too large, or cannot be written.
    public func put(_ bytes: [UInt8], sha256 sha: String) throws {
        guard UInt64(bytes.count) <= maxSize else {
            throw RegistryError.invalid(
                "the artifact is \(formatBytes(UInt64(bytes.count))), over the registry's limit of \(formatBytes(maxSize))")
        }
        let actual = SHA256.hexDigest(of: bytes)
        guard actual == sha else {
            throw RegistryError.invalid("the artifact's bytes hash to \(actual), not the \(sha.prefix(80)) the request names")
        }
        let target = path(of: sha)
        if let existing = try? read(sha: sha), existing.count == bytes.count { return }
        let folder = (target as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let temporary = target + ".partial-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
            throw RegistryError.unavailable("cannot write to the artifact store at \(root)")
        }
        guard rename(temporary, target) == 0 else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw RegistryError.unavailable(
                "cannot move the artifact into place at \(target): \(String(cString: strerror(errno)))")
        }
    }

    /// The artifact's bytes, checked against its hash.
    /// - Throws: `RegistryError` naming the artifact when it is missing or corrupted.
    public func read(sha: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path(of: sha)) else {
            throw RegistryError.unavailable("artifact \(sha) is missing from the artifact store at \(root)")
        }
        let bytes = [UInt8](data)
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
