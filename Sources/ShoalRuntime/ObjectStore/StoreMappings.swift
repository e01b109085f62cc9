#if canImport(Glibc)
    import Glibc
#endif

/// One mapping of a store file; unmapped when the last holder lets go of it.
final class FileMapping: @unchecked Sendable {
    // Immutable after init; only deinit unmaps.
    let base: UnsafeMutableRawPointer
    let count: Int

    /// Maps `count` bytes of the open file `descriptor`; `path` only names it in errors.
    init(descriptor: Int32, count: Int, writable: Bool, populate: Bool, path: String) throws {
        let protection = writable ? PROT_READ | PROT_WRITE : PROT_READ
        let pointer = mmap(nil, count, protection, MAP_SHARED | (populate ? MAP_POPULATE : 0), descriptor, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw ClusterError.peerError("cannot map object file \(path): \(String(cString: strerror(errno)))")
        }
        base = pointer
        self.count = count
    }

    deinit { munmap(base, count) }
}

/// The mappings of large store files a process wrote or read, kept for when it meets the same
/// file again.
///
/// Why: the node keeps the files of freed objects and gives one to the next object of the same
/// size and job, so its pages are not allocated and zeroed again, and a process that reads an
/// object often reads it again. Mapping a file costs page-table work on the order of the copy
/// itself (about 10 ms to map 100 MiB with `MAP_POPULATE`, 4 ms to unmap it, against 11 ms to
/// copy it on the development VM; mapping without `MAP_POPULATE` costs a fault per 4 KiB page
/// instead, several times more); a mapping kept from the last use of the same file costs nothing.
/// A kept mapping also keeps its pages, so every file the node has since deleted
/// (`st_nlink == 0`) is let go before another mapping is kept and at `release()`, which owners
/// call on a timer.
/// A `MappedObject` handed out holds its mapping itself, so letting go here never unmaps bytes
/// someone still reads.
///
/// Used by one actor (a driver's or an executor's), on its thread.
final class StoreMappings {
    private struct Kept {
        let descriptor: Int32
        let device: UInt64
        let inode: UInt64
        let mapping: FileMapping
        var lastUse: UInt64
    }

    private var kept: [Kept] = []
    private var clock: UInt64 = 0
    /// Files smaller than this are mapped for one use only: their mapping costs little.
    static let minimumKeptSize = 8 << 20
    private let maximumKept = 4

    deinit {
        for entry in kept { close(entry.descriptor) }
    }

    /// Opens the store file at `path` (`count` bytes), hands `body` its bytes to fill, and keeps
    /// the mapping if the file is large.
    /// - Throws: `ClusterError` naming the file when it cannot be opened or mapped.
    func write(path: String, count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) throws {
        guard count > 0 else { return }
        let mapping = try writableMapping(path: path, count: count)
        body(UnsafeMutableRawBufferPointer(start: mapping.base, count: count))
    }

    /// Maps the store file at `path` (`count` bytes) for reading, through a kept mapping if the
    /// file is large (and this process may write it, as the node's own user may: kept mappings
    /// serve writes too).
    /// - Throws: `ClusterError` naming the file when it cannot be opened or mapped.
    func read(path: String, count: Int) throws -> MappedObject {
        guard count > 0 else { return MappedObject(mapping: nil, count: 0) }
        let large = count >= Self.minimumKeptSize
        if large && access(path, W_OK) == 0 {
            return MappedObject(mapping: try writableMapping(path: path, count: count), count: count)
        }
        let descriptor = try open(path, flags: O_RDONLY)
        defer { close(descriptor) }
        let mapping = try FileMapping(descriptor: descriptor, count: count, writable: false, populate: large, path: path)
        return MappedObject(mapping: mapping, count: count)
    }

    /// Lets go of the mappings of files the node has deleted, so their memory returns.
    func release() {
        kept.removeAll { entry in
            var status = stat()
            guard fstat(entry.descriptor, &status) != 0 || status.st_nlink == 0 else { return false }
            close(entry.descriptor)
            return true
        }
    }

    /// A populated read-write mapping of the file, the kept one when there is one; large files'
    /// new mappings are kept.
    private func writableMapping(path: String, count: Int) throws -> FileMapping {
        let descriptor = try open(path, flags: O_RDWR)
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw ClusterError.peerError("cannot inspect object file \(path): \(reason)")
        }
        clock += 1
        let device = UInt64(status.st_dev)
        let inode = UInt64(status.st_ino)
        if let index = kept.firstIndex(where: { $0.device == device && $0.inode == inode && $0.mapping.count == count }) {
            close(descriptor)
            kept[index].lastUse = clock
            return kept[index].mapping
        }
        // Pre-fault the whole mapping in one call instead of one page fault per page.
        let mapping: FileMapping
        do {
            mapping = try FileMapping(descriptor: descriptor, count: count, writable: true, populate: true, path: path)
        } catch {
            close(descriptor)
            throw error
        }
        guard count >= Self.minimumKeptSize else {
            close(descriptor)
            return mapping
        }
        release()
        if kept.count >= maximumKept, let oldest = kept.indices.min(by: { kept[$0].lastUse < kept[$1].lastUse }) {
            close(kept.remove(at: oldest).descriptor)
        }
        kept.append(Kept(descriptor: descriptor, device: device, inode: inode, mapping: mapping, lastUse: clock))
        return mapping
    }

    private func open(_ path: String, flags: Int32) throws -> Int32 {
        let descriptor = Glibc.open(path, flags | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw ClusterError.notFound("cannot open object file \(path): \(String(cString: strerror(errno)))")
        }
        return descriptor
    }
}
