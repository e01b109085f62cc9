import CShoalKernels
import Foundation
import Synchronization

/// All-reduce among ranks on one machine through one shared-memory segment: each rank writes its
/// buffer into its slot, sums its own chunk across every slot (in rank order) into the result,
/// and copies the whole result back; two barriers between (futexes, after a short spin when the
/// ranks have a core each).
///
/// Segment layout: a 4 KiB header (the barrier, each rank's pid), then `size` slots and the
/// result, each `count` floats on its own 64-byte boundary.
public final class SharedMemoryCollective: Collective, @unchecked Sendable {
    // @unchecked: the mapping is written only as the protocol above says (each rank its own slot
    // and chunk, between barriers); `closed` guards the unmapping.
    public let rank: Int
    public let size: Int
    public let count: Int
    public let name: String
    private let base: UnsafeMutableRawPointer
    private let length: Int
    private let spins: Int
    private let deadline: Duration
    private let closed = Mutex(false)

    static let headerBytes = 4096

    /// Maps (creating it if it does not exist) the segment `/dev/shm/NAME` shared by `size` ranks.
    /// - Parameters:
    ///   - name: the group's segment name (one per group, agreed at rendezvous).
    ///   - count: floats per buffer.
    ///   - deadline: how long one all-reduce may wait for a peer before failing.
    /// - Throws: `CollectiveError` when the segment cannot be made or mapped.
    public init(name: String, rank: Int, size: Int, count: Int, deadline: Duration = .seconds(600)) throws {
        guard size >= 1, (0..<size).contains(rank), count >= 0, size <= 256 else {
            throw CollectiveError("rank \(rank) of \(size) is not a valid place in a group")
        }
        guard !name.isEmpty, !name.contains("/") else { throw CollectiveError("bad segment name \(name)") }
        self.rank = rank
        self.size = size
        self.count = count
        self.name = name
        self.deadline = deadline
        let slotBytes = (count * 4 + 63) & ~63
        length = Self.headerBytes + slotBytes * (size + 1)
        let descriptor = open("/dev/shm/\(name)", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw CollectiveError("cannot open /dev/shm/\(name): \(String(cString: strerror(errno)))")
        }
        defer { Foundation.close(descriptor) }
        // Every rank sizes it the same; a new file reads as zeros (the barrier's start).
        guard ftruncate(descriptor, off_t(length)) == 0 else {
            throw CollectiveError("cannot size /dev/shm/\(name): \(String(cString: strerror(errno)))")
        }
        // Reserved now: a full /dev/shm is an error here, not a SIGBUS at the first write.
        let reserved = posix_fallocate(descriptor, 0, off_t(length))
        guard reserved == 0 else {
            Foundation.unlink("/dev/shm/\(name)")
            throw CollectiveError(
                "no room in /dev/shm for the \(length >> 20) MiB of \(name): \(String(cString: strerror(reserved)))")
        }
        guard let mapping = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0), mapping != MAP_FAILED
        else {
            throw CollectiveError("cannot map /dev/shm/\(name): \(String(cString: strerror(errno)))")
        }
        base = mapping
        // Spinning helps only when every rank has a core of its own.
        spins = size <= ProcessInfo.processInfo.activeProcessorCount ? 20_000 : 0
        pids[rank] = getpid()
    }

    deinit { close() }

    private var barrier: UnsafeMutablePointer<shoal_shm_barrier> { base.assumingMemoryBound(to: shoal_shm_barrier.self) }
    private var pids: UnsafeMutablePointer<Int32> { (base + 64).assumingMemoryBound(to: Int32.self) }
    private var slotStride: Int { ((count * 4 + 63) & ~63) / 4 }
    private var slots: UnsafeMutablePointer<Float> { (base + Self.headerBytes).assumingMemoryBound(to: Float.self) }
    private var result: UnsafeMutablePointer<Float> { slots + size * slotStride }

    /// Waits until every rank has arrived; fails when one died, the group was aborted, or the deadline passed.
    public func barrierWait() throws {
        let generation = shoal_barrier_arrive(barrier, UInt32(size))
        let started = ContinuousClock.now
        while true {
            switch shoal_barrier_await(barrier, generation, spins, 100) {
            case 0: return
            case 2: throw CollectiveError("the group of \(name) was aborted")
            case 3: throw CollectiveError("this system has no futexes for the shared-memory collective")
            default:
                for peer in 0..<size where peer != rank {
                    let pid = pids[peer]
                    if pid > 0, kill(pid, 0) != 0, errno == ESRCH {
                        shoal_barrier_abort(barrier)
                        throw CollectiveError("rank \(peer) (pid \(pid)) of \(name) exited")
                    }
                }
                if ContinuousClock.now - started > deadline {
                    shoal_barrier_abort(barrier)
                    throw CollectiveError("rank \(rank) of \(name) waited past \(deadline) for its peers")
                }
            }
        }
    }

    public func allReduceMean(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard buffer.count == count, let data = buffer.baseAddress else {
            throw CollectiveError("a buffer of \(buffer.count) floats for a group of \(count)")
        }
        guard size > 1 else { return }
        (slots + rank * slotStride).update(from: data, count: count)
        try barrierWait()
        let mine = chunkRange(rank, of: size, count: count)
        shoal_sum_slots(
            slots, slotStride, Int32(size), mine.lowerBound, mine.count, 1 / Float(size), result + mine.lowerBound)
        try barrierWait()
        // The next call writes slots only after this barrier and the result only after the next
        // one, which every rank reaches only once it has copied the result out.
        data.update(from: result, count: count)
    }

    public func abort() {
        guard !closed.withLock({ $0 }) else { return }
        shoal_barrier_abort(barrier)
    }

    /// Removes the segment's name (mappings stay); every rank has mapped it once rendezvous is
    /// over. Any rank may call it, more than once.
    public func unlink() {
        Foundation.unlink("/dev/shm/\(name)")
    }

    public func close() {
        let first = closed.withLock { closed -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        munmap(base, length)
    }
}
