import CZeroMQ

/// A libzmq context. libzmq contexts are thread-safe, so one is shared by a whole process.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// The process-wide context.
    public static let shared = ZMQContext()

    /// Creates a context with `ioThreads` libzmq I/O threads.
    public init(ioThreads: Int32 = 1) {
        // zmq_ctx_new only fails when the process is out of memory or file descriptors; there is
        // no sensible way on from there.
        guard let context = zmq_ctx_new() else { preconditionFailure("zmq_ctx_new failed: \(ZMQError.last())") }
        zmq_ctx_set(context, ZMQ_IO_THREADS, ioThreads)
        zmq_ctx_set(context, ZMQ_BLOCKY, 0)
        handle = context
    }

    deinit { zmq_ctx_term(handle) }
}

/// The libzmq version, as `major.minor.patch`.
public var zmqVersion: String {
    var major: Int32 = 0
    var minor: Int32 = 0
    var patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return "\(major).\(minor).\(patch)"
}
