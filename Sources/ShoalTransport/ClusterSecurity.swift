import CCrypto
import CZeroMQ
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A cluster's CurveZMQ keys, all derived from one secret (32 random bytes, kept in a file of
/// mode 0600): the servers' key pair, and the key pair every client of the cluster proves it
/// holds the secret with. A server accepts a connection only from the clients' public key
/// (checked by a ZAP handler), and everything on the connection is encrypted.
public struct ClusterKeys: Sendable, Equatable {
    public let serverPublic: [UInt8]
    let serverSecret: [UInt8]
    public let clientPublic: [UInt8]
    let clientSecret: [UInt8]

    /// Derives the key pairs: each secret key is SHA-256 of a label and the cluster secret.
    /// - Throws: `ZMQError` when libzmq has no CURVE.
    public init(secret: [UInt8]) throws {
        guard zmq_has("curve") == 1 else {
            throw ZMQError(
                errno: 0,
                message:
                    "this libzmq was built without CURVE (zmq_has(\"curve\") is false): an encrypted cluster needs one that has it"
            )
        }
        serverSecret = Self.sha256(Array("shoal server key".utf8) + secret)
        clientSecret = Self.sha256(Array("shoal client key".utf8) + secret)
        serverPublic = try Self.publicKey(of: serverSecret)
        clientPublic = try Self.publicKey(of: clientSecret)
    }

    /// Reads the secret file: 64 hexadecimal digits, in a file only its owner may read.
    /// - Throws: `ZMQError` naming what is wrong with the file.
    public static func load(path: String) throws -> ClusterKeys {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ZMQError(
                errno: errno, message: "the cluster secret \(path) cannot be read: \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw ZMQError(
                errno: 0,
                message:
                    "the cluster secret \(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))): chmod 600 it"
            )
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ZMQError(errno: 0, message: "the cluster secret \(path) cannot be read")
        }
        let digits = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        guard digits.count == 64, let secret = hexBytes(digits) else {
            throw ZMQError(errno: 0, message: "the cluster secret \(path) is not 64 hexadecimal digits")
        }
        return try ClusterKeys(secret: secret)
    }

    /// Writes a new random secret to `path` (mode 0600), unless a file is there already.
    /// - Throws: `ZMQError` when the file cannot be written.
    public static func create(path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        var secret = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in secret.indices { secret[index] = UInt8.random(in: 0...255, using: &generator) }
        let text = secret.map { String(format: "%02x", $0) }.joined() + "\n"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ZMQError(errno: errno, message: "cannot write the cluster secret \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let written = text.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
        guard written == text.utf8.count else { throw ZMQError(errno: errno, message: "cannot write the cluster secret \(path)") }
    }

    static func hexBytes(_ digits: [UInt8]) -> [UInt8]? {
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case 48...57: digit - 48
            case 97...102: digit - 87
            case 65...70: digit - 55
            default: nil
            }
        }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        _ = bytes.withUnsafeBytes { raw in EVP_Digest(raw.baseAddress, raw.count, &digest, &length, EVP_sha256(), nil) }
        return digest
    }

    /// The Curve25519 public key of a secret key (through libzmq's Z85 form).
    static func publicKey(of secret: [UInt8]) throws -> [UInt8] {
        var secretText = [CChar](repeating: 0, count: 41)
        var publicText = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&secretText, secret, 32) != nil, zmq_curve_public(&publicText, secretText) == 0 else {
            throw ZMQError.last("deriving a CURVE public key")
        }
        var key = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&key, publicText) != nil else { throw ZMQError.last("decoding a CURVE public key") }
        return key
    }
}

/// Whether this process's sockets are secured, and the ZAP handler that admits clients.
///
/// A process joins an encrypted cluster when `SHOAL_CLUSTER_SECRET_FILE` names the cluster's
/// secret: then every TCP or IPC socket it binds is a CURVE server that admits only the cluster's
/// clients, and every socket it connects is such a client. Child processes inherit the variable.
public enum ClusterSecurity {
    /// The environment variable naming the secret file.
    public static let variable = "SHOAL_CLUSTER_SECRET_FILE"

    private static let loaded = Mutex<[String: ClusterKeys]>([:])
    private static let handlers = Mutex<Set<UnsafeMutableRawPointer>>([])

    /// This process's keys, or nil when it runs without a secret.
    /// - Throws: `ZMQError` for a secret file that cannot be used (never silently plain).
    public static func current() throws -> ClusterKeys? {
        // getenv, not ProcessInfo.environment: this runs at every bind and connect, and the
        // latter copies the whole environment each time.
        guard let value = getenv(variable) else { return nil }
        let path = String(cString: value)
        guard !path.isEmpty else { return nil }
        if let keys = loaded.withLock({ $0[path] }) { return keys }
        let keys = try ClusterKeys.load(path: path)
        loaded.withLock { $0[path] = keys }
        return keys
    }

    /// Whether an endpoint's transport carries CURVE (inproc does not need it).
    static func secures(_ endpoint: String) -> Bool { endpoint.hasPrefix("tcp://") || endpoint.hasPrefix("ipc://") }

    /// Starts the context's ZAP handler once: a thread answering libzmq's authentication requests,
    /// admitting CURVE clients with the cluster's client key and no one else.
    static func ensureHandler(_ context: ZMQContext, keys: ClusterKeys) throws {
        let started = handlers.withLock { handlers -> Bool in
            if handlers.contains(context.handle) { return true }
            handlers.insert(context.handle)
            return false
        }
        guard !started else { return }
        guard let socket = zmq_socket(context.handle, ZMQ_REP) else { throw ZMQError.last("opening the ZAP handler's socket") }
        var linger: Int32 = 0
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size)
        guard zmq_bind(socket, "inproc://zeromq.zap.01") == 0 else {
            zmq_close(socket)
            throw ZMQError.last("binding the ZAP handler")
        }
        let handle = Handed(socket)
        let allowed = keys.clientPublic
        let thread = Thread { serveAuthentication(handle.pointer, allowed: allowed) }
        thread.name = "shoal-zap"
        thread.start()
    }

    struct Handed: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
    }

    /// ZAP (RFC 27): each request is version, request id, domain, address, routing id,
    /// mechanism and credentials; the reply version, request id, status code and text, user id
    /// and metadata.
    static func serveAuthentication(_ socket: UnsafeMutableRawPointer, allowed: [UInt8]) {
        while true {
            guard let request = receiveFrames(socket) else { return }
            let accepted =
                request.count >= 7 && request[0] == Array("1.0".utf8) && request[5] == Array("CURVE".utf8)
                && request[6] == allowed
            let requestID = request.count > 1 ? request[1] : []
            let reply: [[UInt8]] = [
                Array("1.0".utf8), requestID, Array((accepted ? "200" : "400").utf8),
                Array((accepted ? "OK" : "not a client of this cluster").utf8), accepted ? Array("cluster".utf8) : [], [],
            ]
            for (index, frame) in reply.enumerated() {
                let flags = index < reply.count - 1 ? ZMQ_SNDMORE : 0
                _ = frame.withUnsafeBytes { zmq_send(socket, $0.baseAddress, $0.count, flags) }
            }
        }
    }

    /// One multi-frame message, blocking; nil when the context is ending.
    static func receiveFrames(_ socket: UnsafeMutableRawPointer) -> [[UInt8]]? {
        var frames: [[UInt8]] = []
        while true {
            var message = zmq_msg_t()
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            guard zmq_msg_recv(&message, socket, 0) >= 0 else {
                if zmq_errno() == EINTR { continue }
                return nil
            }
            let size = zmq_msg_size(&message)
            let data = zmq_msg_data(&message)
            frames.append(size > 0 && data != nil ? Array(UnsafeRawBufferPointer(start: data, count: size)) : [])
            if zmq_msg_more(&message) == 0 { return frames }
        }
    }
}
