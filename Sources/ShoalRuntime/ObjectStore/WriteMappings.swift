#if canImport(Glibc)
    import Glibc
#endif

/// The writable mappings of large store files a process wrote, kept for when its node hands it
/// the same file again.
///
/// Why: the node keeps the files of freed objects and gives one to the next object of the same
/// size and job, so its pages are not allocated and zeroed again. Mapping such a file still costs
/// page-table work on the order of the copy itself (about 10 ms to map 100 MiB with
/// `MAP_POPULATE`, 4 ms to unmap it, against 11 ms to copy it on the development VM); a mapping
/// kept from the last write into the same file costs nothing. A kept mapping also keeps its
/// pages, so every file the node has since deleted (`st_nlink == 0`) is let go at the next write
/// or `release()`, which owners call on a timer.
///
/// Used by one actor (a driver's or an executor's), on its thread.
final class WriteMappings {
    private struct Kept {
        let descriptor: Int32
        let device: UInt64
        let inode: UInt64
        let base: UnsafeMutableRawPointer
        let count: Int
        var lastUse: UInt64
    }

    private var kept: [Kept] = []
    private var clock: UInt64 = 0
    /// Files smaller than this are mapped for one write only: their mapping costs little.
    static let minimumKeptSize = 8 << 20
    private let maximumKept = 4

    deinit {
        for entry in kept { drop(entry) }
    }

    /// Opens the store file at `path` (`count` bytes), hands `body` its bytes to fill, and keeps
    /// the mapping if the file is large.
    /// - Throws: `ClusterError` naming the file when it cannot be opened or mapped.
    func write(path: String, count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) throws {
        release()
        guard count > 0 else { return }
        let descriptor = open(path, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ClusterError.notFound("cannot open object file \(path): \(String(cString: strerror(errno)))")
        }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw ClusterError.peerError("cannot inspect object file \(path): \(reason)")
        }
        clock += 1
        let device = UInt64(status.st_dev)
        let inode = UInt64(status.st_ino)
        if let index = kept.firstIndex(where: { $0.device == device && $0.inode == inode && $0.count == count }) {
            close(descriptor)
            kept[index].lastUse = clock
            body(UnsafeMutableRawBufferPointer(start: kept[index].base, count: count))
            return
        }
        // Pre-fault the whole mapping in one call instead of one page fault per page.
        let pointer = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, descriptor, 0)
        guard let pointer, pointer != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw ClusterError.peerError("cannot map object file \(path): \(reason)")
        }
        body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        guard count >= Self.minimumKeptSize else {
            munmap(pointer, count)
            close(descriptor)
            return
        }
        if kept.count >= maximumKept, let oldest = kept.indices.min(by: { kept[$0].lastUse < kept[$1].lastUse }) {
            drop(kept.remove(at: oldest))
        }
        kept.append(Kept(descriptor: descriptor, device: device, inode: inode, base: pointer, count: count, lastUse: clock))
    }

    /// Lets go of the mappings of files the node has deleted, so their memory returns.
    func release() {
        kept.removeAll { entry in
            var status = stat()
            guard fstat(entry.descriptor, &status) != 0 || status.st_nlink == 0 else { return false }
            drop(entry)
            return true
        }
    }

    private func drop(_ entry: Kept) {
        munmap(entry.base, entry.count)
        close(entry.descriptor)
    }
}
