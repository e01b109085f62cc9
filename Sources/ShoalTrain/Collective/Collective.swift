import Foundation

/// Gradient averaging among the ranks of a data-parallel group: every rank passes its buffer and
/// gets back the mean of all ranks' buffers, the same bits on every rank.
///
/// Two conformers: `SharedMemoryCollective` when every rank runs on one machine, and
/// `RingCollective` (a ring over ZeroMQ) otherwise. Data moves between the ranks themselves,
/// never through the head or the driver.
public protocol Collective: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// Replaces `buffer` on every rank with the element-wise mean of all ranks' buffers.
    /// - Throws: `CollectiveError` when a peer died, stalled past the deadline, or the group was aborted.
    func allReduceMean(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Wakes and fails every wait of this rank (and, where the transport allows, of its peers).
    func abort()
    /// Frees the transport.
    func close()
}

/// Where a rank can be reached, as it tells the others at rendezvous.
public struct CollectiveEndpoint: Codable, Sendable, Equatable {
    public var rank: Int
    /// The machine (its machine id and boot id): ranks with the same host share memory.
    public var host: String
    /// The rank's ZeroMQ address for the ring (`tcp://IP:PORT`).
    public var address: String
    public var pid: Int32

    public init(rank: Int, host: String, address: String, pid: Int32) {
        self.rank = rank
        self.host = host
        self.address = address
        self.pid = pid
    }

    /// This machine's identity: `/etc/machine-id` and the kernel's boot id.
    public static var thisHost: String {
        let machine = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8)) ?? ""
        let boot = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? ""
        let host = ProcessInfo.processInfo.hostName
        return [machine, boot, host].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: "/")
    }
}

/// A collective that could not complete.
public struct CollectiveError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How the ranks split a buffer of `count` elements into `size` chunks (aligned to 16 elements).
func chunkRange(_ chunk: Int, of size: Int, count: Int) -> Range<Int> {
    func boundary(_ index: Int) -> Int {
        index >= size ? count : min(count, (count * index / size) & ~15)
    }
    return boundary(chunk)..<boundary(chunk + 1)
}
