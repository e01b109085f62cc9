import CCrypto
import Foundation

/// SHA-256 through OpenSSL's libcrypto.
enum SHA256 {
    /// The hex digest of a file, read in chunks.
    /// - Throws: `ClusterError.notFound` when the file cannot be read.
    static func hexDigest(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ClusterError.notFound("cannot read '\(path)' to hash it")
        }
        defer { try? handle.close() }
        guard let context = EVP_MD_CTX_new() else { throw ClusterError.peerError("libcrypto: EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(context) }
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            chunk.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
        }
        return finish(context)
    }

    /// Whether `text` is a SHA-256 digest in lowercase hex (and so safe as a file name).
    static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// The hex digest of bytes.
    static func hexDigest(of bytes: [UInt8]) -> String {
        guard let context = EVP_MD_CTX_new() else { return "" }
        defer { EVP_MD_CTX_free(context) }
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
        bytes.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
        return finish(context)
    }

    private static func finish(_ context: OpaquePointer) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
