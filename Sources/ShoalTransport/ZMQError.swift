import CZeroMQ
#if canImport(Glibc)
    import Glibc
#endif

/// An error from libzmq or from the transport around it.
public struct ZMQError: Error, CustomStringConvertible, Sendable {
    /// The errno value libzmq reported, or 0.
    public let errno: Int32
    /// What was being done, and libzmq's words for what failed.
    public let message: String

    init(errno: Int32, message: String) {
        self.errno = errno
        self.message = message
    }

    /// The last libzmq error on this thread, with what was being done.
    static func last(_ doing: String = "") -> ZMQError {
        let code = zmq_errno()
        let text = String(cString: zmq_strerror(code))
        return ZMQError(errno: code, message: doing.isEmpty ? text : "\(doing): \(text)")
    }

    /// The last system error (errno) on this thread, with what was being done.
    static func system(_ doing: String) -> ZMQError {
        let code = Glibc.errno
        return ZMQError(errno: code, message: "\(doing): \(String(cString: strerror(code)))")
    }

    public var description: String { "ZeroMQ: \(message)" }

    /// The call would have blocked (EAGAIN).
    public var wouldBlock: Bool { errno == EAGAIN }
}
