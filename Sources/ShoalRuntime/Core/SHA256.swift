import CCrypto
import Foundation

/// SHA-256 through OpenSSL's libcrypto.
enum SHA256 {
    /// A digest fed piece by piece.
    final class Hasher {
        private let context: OpaquePointer

        /// - Throws: `ClusterError.peerError` when libcrypto cannot make a context.
        init() throws {
            guard let context = EVP_MD_CTX_new() else { throw ClusterError.peerError("libcrypto: EVP_MD_CTX_new failed") }
            self.context = context
            EVP_DigestInit_ex(context, EVP_sha256(), nil)
        }

        deinit { EVP_MD_CTX_free(context) }

        func update(_ bytes: UnsafeRawBufferPointer) {
            if let base = bytes.baseAddress { EVP_DigestUpdate(context, base, bytes.count) }
        }

        /// The digest of everything fed so far, in lowercase hex.
        func hexDigest() -> String {
            var digest = [UInt8](repeating: 0, count: 32)
            var length: UInt32 = 0
            EVP_DigestFinal_ex(context, &digest, &length)
            return digest.map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined()
        }
    }

    /// The hex digest of a file, read in chunks.
    /// - Throws: `ClusterError.notFound` when the file cannot be read.
    static func hexDigest(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ClusterError.notFound("cannot read '\(path)' to hash it")
        }
        defer { try? handle.close() }
        let hasher = try Hasher()
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { hasher.update($0) }
        }
        return hasher.hexDigest()
    }

    /// Whether `text` is a SHA-256 digest in lowercase hex (and so safe as a file name).
    static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The hex digest of bytes ("" only if libcrypto cannot make a context, which matches no digest).
    static func hexDigest(of bytes: [UInt8]) -> String {
        guard let hasher = try? Hasher() else { return "" }
        bytes.withUnsafeBytes { hasher.update($0) }
        return hasher.hexDigest()
    }
}

/// SHA-256 digests in lowercase hex, for content addresses and lineage.
public enum ContentDigest {
    /// The digest of a file, read a piece at a time.
    /// - Throws: `ClusterError.notFound` when the file cannot be read.
    public static func sha256(ofFile path: String) throws -> String { try SHA256.hexDigest(ofFile: path) }

    /// The digest of bytes.
    public static func sha256(of bytes: [UInt8]) -> String { SHA256.hexDigest(of: bytes) }

    /// The digest of bytes in memory ("" only if libcrypto cannot make a context).
    public static func sha256(of bytes: UnsafeRawBufferPointer) -> String {
        guard let hasher = try? SHA256.Hasher() else { return "" }
        hasher.update(bytes)
        return hasher.hexDigest()
    }
}
